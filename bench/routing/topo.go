package main

import (
	"context"
	"fmt"
	"net/netip"
)

// mode is how packets cross between the two hosts.
type mode string

const (
	routed mode = "routed" // native routes via the peer host's underlay address
	vxlan  mode = "vxlan"  // VXLAN between the hosts
)

var modes = []mode{routed, vxlan}

// The underlay: one /24 (TEST-NET-1) on a veth pair joining the hosts'
// eth0s, MTU 1500. Everything stays inside the benchmark's namespaces.
var (
	underlay    = [2]netip.Prefix{netip.MustParsePrefix("192.0.2.11/24"), netip.MustParsePrefix("192.0.2.12/24")}
	underlayMTU = 1500
)

// pair is what one measurement runs over: a client namespace sending to
// a server namespace's address.
type pair struct {
	name, who   string
	client, srv *netNS
	srvAddr     string
	mtu         int // the client's eth0 MTU
}

// topology is one implementation's namespaces and the pair it measures.
// close stops whatever runs in them and removes them.
type topology struct {
	pair
	spaces []*netNS // closed last first
	stop   []func() // run before the namespaces are closed
}

func (t *topology) close() {
	for i := len(t.stop) - 1; i >= 0; i-- {
		t.stop[i]()
	}
	for i := len(t.spaces) - 1; i >= 0; i-- {
		t.spaces[i].close()
	}
}

// ns creates a namespace owned by t.
func (t *topology) ns(ctx context.Context, suffix string) (*netNS, error) {
	n, err := newNS(ctx, suffix)
	if err != nil {
		return nil, err
	}
	t.spaces = append(t.spaces, n)
	return n, nil
}

// hosts creates the two host namespaces <prefix>-h1 and <prefix>-h2,
// joined by the underlay on their eth0s.
func (t *topology) hosts(ctx context.Context, prefix string) ([2]*netNS, error) {
	var hs [2]*netNS
	for i := range hs {
		var err error
		if hs[i], err = t.ns(ctx, fmt.Sprintf("%s-h%d", prefix, i+1)); err != nil {
			return hs, err
		}
	}
	if err := hs[0].run(ctx, "ip", "link", "add", "eth0", "mtu", fmt.Sprint(underlayMTU), "type", "veth",
		"peer", "name", "eth0", "mtu", fmt.Sprint(underlayMTU), "netns", hs[1].name); err != nil {
		return hs, err
	}
	for i, h := range hs {
		for _, s := range [][]string{
			{"ip", "addr", "add", underlay[i].String(), "dev", "eth0"},
			{"ip", "link", "set", "eth0", "up"},
		} {
			if err := h.run(ctx, s[0], s[1:]...); err != nil {
				return hs, err
			}
		}
	}
	return hs, nil
}

// newDirect is the physical limit: two namespaces joined by one veth
// pair, MTU 1500, nothing else.
func newDirect(ctx context.Context) (_ *topology, err error) {
	t := &topology{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	a, err := t.ns(ctx, "direct-a")
	if err != nil {
		return nil, err
	}
	b, err := t.ns(ctx, "direct-b")
	if err != nil {
		return nil, err
	}
	if err := a.run(ctx, "ip", "link", "add", "eth0", "mtu", fmt.Sprint(underlayMTU), "type", "veth",
		"peer", "name", "eth0", "mtu", fmt.Sprint(underlayMTU), "netns", b.name); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		n    *netNS
		addr string
	}{{a, "10.70.0.1/24"}, {b, "10.70.0.2/24"}} {
		if err := s.n.run(ctx, "ip", "addr", "add", s.addr, "dev", "eth0"); err != nil {
			return nil, err
		}
		if err := s.n.run(ctx, "ip", "link", "set", "eth0", "up"); err != nil {
			return nil, err
		}
	}
	t.pair = pair{name: "direct", who: directIs,
		client: a, srv: b, srvAddr: "10.70.0.2", mtu: underlayMTU}
	if err := waitPing(ctx, a, "10.70.0.2"); err != nil {
		return nil, err
	}
	return t, nil
}
