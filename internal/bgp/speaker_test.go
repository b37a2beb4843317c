package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/testnet"
)

// Speakers in these tests peer over loopback addresses 127.0.0.x, each on
// its own free port, in the test's own network namespace: GoBGP's
// goroutines open their sockets on whichever thread they run, so a
// speaker cannot be confined to a namespace other than its process's.

// node is one in-process speaker of a test topology.
type node struct {
	name string
	addr netip.Addr // session and listen address
	port int
	asn  uint32
	cfg  Config
	s    *Speaker
	stop func() // cancels Run and waits for it; safe to call twice
}

func newNode(t *testing.T, name string, octet byte, asn uint32, grTime time.Duration) *node {
	t.Helper()
	port := testnet.FreePorts(t, 1)[0]
	addr := netip.AddrFrom4([4]byte{127, 0, 0, octet})
	return &node{
		name: name, addr: addr, port: port, asn: asn,
		cfg: Config{
			RouterID:            netip.AddrFrom4([4]byte{10, 255, 0, octet}),
			ASN:                 asn,
			ListenAddrs:         []netip.Addr{addr},
			ListenPort:          port,
			GracefulRestartTime: grTime,
		},
	}
}

// start runs a new Speaker for n and waits until it is ready. Speakers
// start one at a time: GoBGP's StartBgp writes package-level route
// selection options, which must not race with another server's reads.
func (n *node) start(t *testing.T, peers []Peer, paths []Path) {
	t.Helper()
	s, err := New(n.cfg, testnet.Logger(t).With("node", n.name))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPaths(ctx, paths); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	n.s = s
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", n.name, err)
		}
	}
	t.Cleanup(n.stop)
	select {
	case <-s.Ready():
	case err := <-done:
		stopped = true
		t.Fatalf("%s: Run: %v", n.name, err)
	}
}

// peer is how other nodes name n.
func (n *node) peer(prefix string, rrClient bool) Peer {
	return Peer{Name: prefix + n.name, Addr: n.addr, ASN: n.asn, Port: n.port, RouteReflectorClient: rrClient}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// routesOf is s's learned routes as "prefix via nexthop from peer" lines,
// with " stale" appended to stale ones.
func routesOf(s *Speaker) []string {
	var out []string
	for _, r := range s.Routes() {
		l := fmt.Sprintf("%s via %s from %s", r.Prefix, r.NextHop, r.Peer)
		if r.Stale {
			l += " stale"
		}
		out = append(out, l)
	}
	return out
}

func waitRoutes(t *testing.T, n *node, want ...string) {
	t.Helper()
	testnet.WaitFor(t, fmt.Sprintf("%s to hold routes %q", n.name, want), func() bool {
		return slices.Equal(routesOf(n.s), want)
	})
}

func waitState(t *testing.T, n *node, peer, state string) {
	t.Helper()
	testnet.WaitFor(t, fmt.Sprintf("%s's session with %s to be %s", n.name, peer, state), func() bool {
		st, err := n.s.Status(context.Background())
		if err != nil {
			return false
		}
		for _, p := range st {
			if p.Name == peer {
				return p.State == state
			}
		}
		return state == "" // "" waits for the peer to be gone
	})
}

var (
	blockV4 = Path{Prefix: pfx("10.65.1.0/26"), NextHop: netip.MustParseAddr("192.0.2.11")}
	blockV6 = Path{Prefix: pfx("fd65::40/122"), NextHop: netip.MustParseAddr("fd00::11")}
)

func TestIBGPMesh(t *testing.T) {
	h1 := newNode(t, "h1", 11, 64512, 0)
	h2 := newNode(t, "h2", 12, 64512, 0)
	h3 := newNode(t, "h3", 13, 64512, 0)
	h1.start(t, []Peer{h2.peer("node-mesh:", false), h3.peer("node-mesh:", false)}, []Path{blockV4, blockV6})
	h2.start(t, []Peer{h1.peer("node-mesh:", false), h3.peer("node-mesh:", false)}, nil)
	h3.start(t, []Peer{h1.peer("node-mesh:", false), h2.peer("node-mesh:", false)}, nil)
	sub := h2.s.Subscribe()

	want := []string{"10.65.1.0/26 via 192.0.2.11 from node-mesh:h1", "fd65::40/122 via fd00::11 from node-mesh:h1"}
	waitRoutes(t, h2, want...)
	waitRoutes(t, h3, want...)
	if got := routesOf(h1.s); len(got) != 0 {
		t.Errorf("h1 reports its own paths as learned: %q", got)
	}
	select {
	case <-sub:
	default:
		t.Error("h2's subscriber was not told about the new routes")
	}

	st, err := h1.s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != "node-mesh:h2" || st[0].State != "Established" || st[0].Type != IBGP ||
		st[0].Advertised != 2 || st[0].Since.IsZero() || st[1].Name != "node-mesh:h3" {
		t.Errorf("h1 status = %+v", st)
	}

	// Repeating the desired state changes nothing; a new next hop replaces
	// the route; dropping a path withdraws it everywhere.
	ctx := context.Background()
	if err := h1.s.SetPaths(ctx, []Path{blockV4, blockV6}); err != nil {
		t.Fatal(err)
	}
	if err := h1.s.SetPeers(ctx, []Peer{h2.peer("node-mesh:", false), h3.peer("node-mesh:", false)}); err != nil {
		t.Fatal(err)
	}
	moved := Path{Prefix: blockV4.Prefix, NextHop: netip.MustParseAddr("192.0.2.99")}
	if err := h1.s.SetPaths(ctx, []Path{moved}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, h2, "10.65.1.0/26 via 192.0.2.99 from node-mesh:h1")
	waitRoutes(t, h3, "10.65.1.0/26 via 192.0.2.99 from node-mesh:h1")
	if err := h1.s.SetPaths(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, h2)
	waitRoutes(t, h3)

	// Removing a peer closes the session: h3 drops h1's routes at once,
	// not after a graceful restart time.
	if err := h1.s.SetPaths(ctx, []Path{blockV4}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, h3, "10.65.1.0/26 via 192.0.2.11 from node-mesh:h1")
	if err := h1.s.SetPeers(ctx, []Peer{h2.peer("node-mesh:", false)}); err != nil {
		t.Fatal(err)
	}
	waitState(t, h1, "node-mesh:h3", "")
	waitRoutes(t, h3)
	waitState(t, h3, "node-mesh:h1", "Active")
	waitRoutes(t, h2, "10.65.1.0/26 via 192.0.2.11 from node-mesh:h1")
}

func TestEBGP(t *testing.T) {
	h1 := newNode(t, "h1", 21, 64512, 0)
	tor := newNode(t, "tor", 22, 65000, 0)
	h1.start(t, []Peer{tor.peer("global:", false)}, []Path{blockV4, blockV6})
	tor.start(t, []Peer{h1.peer("node:", false)}, []Path{{Prefix: pfx("0.0.0.0/0"), NextHop: tor.addr}})

	waitState(t, h1, "global:tor", "Established")
	st, err := h1.s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Type != EBGP || st[0].ASN != 65000 {
		t.Errorf("status = %+v, want an eBGP session with AS 65000", st)
	}
	waitRoutes(t, h1, "0.0.0.0/0 via 127.0.0.22 from global:tor")
	// GoBGP keeps the next hop a path is originated with, over eBGP too
	// (it sets its own address only on paths that have none): Calyx
	// originates its blocks with the node's address, which is what a ToR
	// on the node's subnet needs.
	waitRoutes(t, tor, "10.65.1.0/26 via 192.0.2.11 from node:h1", "fd65::40/122 via fd00::11 from node:h1")
}

func TestRouteReflector(t *testing.T) {
	rr := newNode(t, "rr", 31, 64512, 0)
	rr.cfg.ClusterID = netip.MustParseAddr("1.0.0.1")
	c1 := newNode(t, "c1", 32, 64512, 0)
	c2 := newNode(t, "c2", 33, 64512, 0)
	rr.start(t, []Peer{c1.peer("node:", true), c2.peer("node:", true)}, nil)
	c1.start(t, []Peer{rr.peer("rr:", false)}, []Path{blockV4, blockV6})
	c2.start(t, []Peer{rr.peer("rr:", false)}, nil)

	// c2 has no session with c1: it learns c1's blocks through the
	// reflector, with c1's next hop.
	waitRoutes(t, c2, "10.65.1.0/26 via 192.0.2.11 from rr:rr", "fd65::40/122 via fd00::11 from rr:rr")
	waitRoutes(t, rr, "10.65.1.0/26 via 192.0.2.11 from node:c1", "fd65::40/122 via fd00::11 from node:c1")
}

func TestGracefulRestart(t *testing.T) {
	// GoBGP keeps a session Idle, refusing connections, for a fixed 5 s
	// after it goes down, so a restart time shorter than about 10 s runs
	// out before a restarted peer can be back.
	const gr = 10 * time.Second
	a := newNode(t, "a", 41, 64512, gr)
	b := newNode(t, "b", 42, 64512, gr)
	a.start(t, []Peer{b.peer("node-mesh:", false)}, nil)
	bPeers := []Peer{a.peer("node-mesh:", false)}
	b.start(t, bPeers, []Path{blockV4})
	fresh := "10.65.1.0/26 via 192.0.2.11 from node-mesh:b"
	waitRoutes(t, a, fresh)

	// b restarts: a keeps its route, stale, and never drops it. A
	// goroutine reads a's routes at every change to catch a drop however
	// short.
	sub := a.s.Subscribe()
	watchDone := make(chan struct{})
	dropped := make(chan []string, 1)
	go func() {
		defer close(dropped)
		for {
			select {
			case <-watchDone:
				return
			case <-sub:
				if got := routesOf(a.s); len(got) != 1 {
					dropped <- got
					return
				}
			}
		}
	}()
	b.stop()
	waitRoutes(t, a, fresh+" stale")
	b.start(t, bPeers, []Path{blockV4})
	waitRoutes(t, a, fresh)
	close(watchDone)
	if got, ok := <-dropped; ok {
		t.Fatalf("a's routes while b restarted: %q", got)
	}

	// b goes away for good: a drops the route once b's restart time is
	// over, and not before.
	b.stop()
	down := time.Now()
	waitRoutes(t, a, fresh+" stale")
	testnet.WaitFor(t, "a to drop b's stale route", func() bool { return len(a.s.Routes()) == 0 })
	if held := time.Since(down); held < gr-time.Second {
		t.Errorf("a dropped b's route after %s, before b's restart time %s", held, gr)
	}
}
