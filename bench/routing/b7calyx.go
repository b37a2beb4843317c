package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/test/hostnode"
)

// Calyx's side of B7: two hosts (namespaces b7calyx-h1 and -h2) each
// running calyx-node with its BGP speaker on (the default), h1's with the
// embedded etcd, in the node-to-node mesh (iBGP, AS 64512). With BGP on,
// calyx-node leaves the routes to other hosts' blocks to BGP: a block of
// h1's reaches h2's kernel only through h1's speaker, h2's speaker and
// h2's reconcile loop. Beside them, in h1's namespace on a second
// address, the bench speaker (b7speaker.go), which h2 peers with through
// a BGPPeer.

// b7Resources are applied once h1 runs: the pool whose every allocation
// claims a new /32 block, and h2's peering with the bench speaker.
func b7Resources() string {
	return fmt.Sprintf(`apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: %s}
spec: {cidr: %s, blockSize: 32, vxlanMode: Never}
---
apiVersion: calyx.dev/v1
kind: BGPPeer
metadata: {name: bench-speaker}
spec: {node: h2, peerIP: %s, asNumber: %d}
`, b7Pool, newRoutePool, speakerAddr, bgpASN)
}

const b7Pool = "bench-b7"

// calyxGR is calyx-node's graceful restart time here: short, so that a
// run starting right after another one's hosts are gone (same addresses)
// is not slowed by routes kept from it. Withdrawals of routes learned
// after the start are acted on at once whatever the time; ready still
// checks that one reaches the kernel before measuring.
const calyxGR = 5 * time.Second

// calyxSide is Calyx's pair of hosts, ready to measure.
type calyxSide struct {
	topo    *topology
	store   *datastore.Client
	alloc   *ipam.Allocator
	speaker *speakerProc
	watch   *routeWatch // h2's routes
	h2      *netNS
	nodes   [2]*hostnode.Node
	next    int // the next handle's number
}

func newCalyxSide(ctx context.Context, binDir, work string) (_ *calyxSide, err error) {
	s := &calyxSide{topo: &topology{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	hs, err := s.topo.hosts(ctx, "b7calyx")
	if err != nil {
		return nil, err
	}
	if s.watch, err = watchRoutes(hs[1], watchedRange, bulkRange); err != nil {
		return nil, err
	}
	s.h2 = hs[1]
	nodes := &s.nodes
	for i, h := range hs {
		cfg := hostnode.Config{BinDir: binDir, NS: h.ns, Name: fmt.Sprintf("h%d", i+1), IP: underlay[i].String(),
			WorkDir: filepath.Join(work, fmt.Sprintf("b7-h%d", i+1)), NoUplink: true,
			Args: []string{"--log-level", "warn", "--bgp-graceful-restart", calyxGR.String()}}
		if i == 0 {
			cfg.EtcdIP = underlay[0].Addr().String()
		} else {
			cfg.Join = nodes[0]
		}
		if nodes[i], err = hostnode.Start(ctx, cfg); err != nil {
			return nil, fmt.Errorf("starting calyx-node on %s: %w", h.name, err)
		}
		node := nodes[i]
		s.topo.stop = append(s.topo.stop, func() {
			if err := node.Stop(); err != nil {
				logf("stopping calyx-node %s: %v", node.Name(), err)
			}
		})
	}
	if _, _, err := nodes[0].Ctl(ctx, b7Resources(), "apply", "-f", "-"); err != nil {
		return nil, err
	}
	// The bench speaker's address, beside h1's own on the underlay.
	if err := hs[0].run(ctx, "ip", "addr", "add", netip.PrefixFrom(speakerAddr, underlay[0].Bits()).String(), "dev", "eth0"); err != nil {
		return nil, err
	}
	if s.speaker, err = startSpeaker(ctx, hs[0]); err != nil {
		return nil, err
	}
	f := nodes[0].PKI()
	if s.store, err = datastore.New(ctx, datastore.Config{Endpoints: []string{nodes[0].Endpoint()}, CAFile: f.CACert,
		CertFile: f.ClientCert, KeyFile: f.ClientKey, Dial: nsDial(hs[0])}, nil); err != nil {
		return nil, fmt.Errorf("connecting to h1's etcd: %w", err)
	}
	s.alloc = ipam.New(s.store)
	return s, nil
}

// nsDial opens TCP connections from inside n (etcd listens on h1's
// underlay address, which the root namespace cannot reach).
func nsDial(n *netNS) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.ns.Do(func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
}

func (s *calyxSide) close() {
	if s.speaker != nil {
		s.speaker.stop()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.watch != nil {
		s.watch.close()
	}
	s.topo.close()
}

func (s *calyxSide) name() string { return "calyx" }

func (s *calyxSide) tracker() *tracker { return s.watch.tracker }

// newRoute gives h1 a new block: one address from the /32-block pool for
// a fresh handle, which IPAM serves by claiming a new block (affinity and
// block written in etcd). The handle has no container ID, so calyx-node's
// garbage collector leaves it alone.
func (s *calyxSide) newRoute(ctx context.Context) (netip.Prefix, error) {
	s.next++
	res, err := s.alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: fmt.Sprintf("bench-b7-%d", s.next), Node: "h1",
		IPv4Pools: []string{b7Pool}})
	if err != nil {
		return netip.Prefix{}, err
	}
	if len(res.IPv4) != 1 {
		return netip.Prefix{}, fmt.Errorf("IPAM gave %v, want one IPv4 address", res.IPv4)
	}
	return netip.PrefixFrom(res.IPv4[0], 32), nil
}

func (s *calyxSide) single(ctx context.Context, on bool) error {
	return s.speaker.send(ctx, map[bool]string{true: "single 1", false: "single 0"}[on])
}

func (s *calyxSide) bulk(ctx context.Context, n int) error {
	return s.speaker.send(ctx, fmt.Sprintf("bulk %d", n))
}

func (s *calyxSide) diag(ctx context.Context) string {
	routes, err := s.h2.output(ctx, "ip", "route", "show", "proto", "80")
	if err != nil {
		routes = err.Error()
	}
	var logs string
	for _, n := range s.nodes {
		if n != nil {
			logs += fmt.Sprintf("%s's calyx-node log (end):\n%s\n", n.Name(), lastLines(n.Log(), 20))
		}
	}
	return fmt.Sprintf("h2's proto 80 routes (%d tracked in the bulk range):\n%s\n%sbench speaker:\n%s", s.watch.size(),
		firstLines(routes, 20), logs, lastLines(s.speaker.stderr.String(), 10))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
