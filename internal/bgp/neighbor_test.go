package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/protobuf/testing/protocmp"
)

var a = netip.MustParseAddr

// netipEq lets cmp compare netip values, whose fields are unexported.
var netipEq = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func testConfig() Config {
	return Config{RouterID: a("10.0.0.1"), ASN: 64512}.withDefaults()
}

func wantNeighbor(addr string, asn uint32, name string, mod func(*api.Peer)) *api.Peer {
	n := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr, PeerAsn: asn, Description: name},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5}},
		Transport: &api.Transport{},
		GracefulRestart: &api.GracefulRestart{
			Enabled: true, RestartTime: 120, NotificationEnabled: true,
		},
	}
	for _, f := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		n.AfiSafis = append(n.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: f, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		})
	}
	if mod != nil {
		mod(n)
	}
	return n
}

func TestNeighbors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		peers []Peer
		want  map[netip.Addr]*api.Peer
		err   string
	}{
		{
			name:  "mesh iBGP peer",
			peers: []Peer{{Name: "node-mesh:h2", Addr: a("192.0.2.2"), ASN: 64512}},
			want:  map[netip.Addr]*api.Peer{a("192.0.2.2"): wantNeighbor("192.0.2.2", 64512, "node-mesh:h2", nil)},
		},
		{
			name:  "eBGP ToR over IPv6, passive, own port",
			peers: []Peer{{Name: "global:tor1", Addr: a("2001:db8::1"), ASN: 65000, Port: 1179, Passive: true}},
			want: map[netip.Addr]*api.Peer{a("2001:db8::1"): wantNeighbor("2001:db8::1", 65000, "global:tor1", func(n *api.Peer) {
				n.Transport = &api.Transport{PassiveMode: true, RemotePort: 1179}
			})},
		},
		{
			name: "reflector client, cluster ID and GR time from config, source address from listen addresses",
			cfg: func(c *Config) {
				c.ClusterID = a("1.0.0.1")
				c.GracefulRestartTime = 5 * time.Second
				c.ListenAddrs = []netip.Addr{a("::"), a("fd00::1"), a("192.0.2.1")}
			},
			peers: []Peer{
				{Name: "node-mesh:h2", Addr: a("192.0.2.2"), ASN: 64512, RouteReflectorClient: true},
				{Name: "node-mesh:h3", Addr: a("fd00::3"), ASN: 64512},
			},
			want: map[netip.Addr]*api.Peer{
				a("192.0.2.2"): wantNeighbor("192.0.2.2", 64512, "node-mesh:h2", func(n *api.Peer) {
					n.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: "1.0.0.1"}
					n.GracefulRestart.RestartTime = 5
					n.Transport.LocalAddress = "192.0.2.1"
				}),
				a("fd00::3"): wantNeighbor("fd00::3", 64512, "node-mesh:h3", func(n *api.Peer) {
					n.GracefulRestart.RestartTime = 5
					n.Transport.LocalAddress = "fd00::1"
				}),
			},
		},
		{
			name:  "reflector client without cluster ID uses the router ID",
			peers: []Peer{{Name: "c", Addr: a("192.0.2.2"), ASN: 64512, RouteReflectorClient: true}},
			want: map[netip.Addr]*api.Peer{a("192.0.2.2"): wantNeighbor("192.0.2.2", 64512, "c", func(n *api.Peer) {
				n.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: "10.0.0.1"}
			})},
		},
		{name: "empty", want: map[netip.Addr]*api.Peer{}},
		{
			name:  "duplicate address",
			peers: []Peer{{Name: "x", Addr: a("192.0.2.2"), ASN: 1}, {Name: "y", Addr: a("192.0.2.2"), ASN: 2}},
			err:   "peer y: address 192.0.2.2 used by two peers",
		},
		{name: "no ASN", peers: []Peer{{Name: "x", Addr: a("192.0.2.2")}}, err: "peer x: ASN must not be 0"},
		{name: "no address", peers: []Peer{{Name: "x", ASN: 1}}, err: "peer x: invalid address"},
		{name: "bad port", peers: []Peer{{Name: "x", Addr: a("192.0.2.2"), ASN: 1, Port: 70000}}, err: "port 70000 out of range"},
		{
			name:  "eBGP reflector client",
			peers: []Peer{{Name: "x", Addr: a("192.0.2.2"), ASN: 1, RouteReflectorClient: true}},
			err:   "a route reflector client must be iBGP",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			got, err := neighbors(cfg, tc.peers)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("neighbors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{cfg: Config{RouterID: a("10.0.0.1"), ASN: 64512}},
		{cfg: Config{RouterID: a("fd00::1"), ASN: 64512}, err: "must be an IPv4 address"},
		{cfg: Config{ASN: 64512}, err: "must be an IPv4 address"},
		{cfg: Config{RouterID: a("10.0.0.1")}, err: "ASN must not be 0"},
		{cfg: Config{RouterID: a("10.0.0.1"), ASN: 1, GracefulRestartTime: time.Hour * 2}, err: "between 1s and 4095s"},
		{cfg: Config{RouterID: a("10.0.0.1"), ASN: 1, ClusterID: a("fd00::1")}, err: "IPv4-formatted"},
	} {
		_, err := New(tc.cfg, nil)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("New(%+v) error = %v, want %q", tc.cfg, err, tc.err)
		}
	}
}

func TestAPIPathRoundTrip(t *testing.T) {
	for _, p := range []Path{
		{Prefix: netip.MustParsePrefix("10.65.1.0/26"), NextHop: a("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("fd65::40/122"), NextHop: a("fd00::1")},
	} {
		ap, err := apiPath(p, false)
		if err != nil {
			t.Fatal(err)
		}
		prefix, ok := prefixOf(ap)
		if !ok || prefix != p.Prefix || nextHopOf(ap) != p.NextHop {
			t.Errorf("apiPath(%v) reads back as %v ok=%v via %v", p, prefix, ok, nextHopOf(ap))
		}
	}
	for _, p := range []Path{
		{Prefix: netip.MustParsePrefix("10.65.1.0/26"), NextHop: a("fd00::1")},
		{Prefix: netip.MustParsePrefix("10.65.1.0/26")},
		{NextHop: a("192.0.2.1")},
	} {
		if err := validPath(p); err == nil {
			t.Errorf("validPath(%v) = nil, want an error", p)
		}
	}
}

// learnedPath is a best path from peer as GoBGP's watch reports it.
func learnedPath(t *testing.T, prefix, nh, peer string, withdraw, stale bool) *apiutil.Path {
	t.Helper()
	p, err := apiPath(Path{Prefix: netip.MustParsePrefix(prefix), NextHop: a(nh)}, withdraw)
	if err != nil {
		t.Fatal(err)
	}
	if peer != "" {
		p.PeerAddress = a(peer)
		p.PeerASN = 64512
	}
	p.Stale = stale
	return p
}

func peerEvent(addr string, state bgp.FSMState) *apiutil.WatchEventMessage_PeerEvent {
	return &apiutil.WatchEventMessage_PeerEvent{
		Type: apiutil.PEER_EVENT_STATE,
		Peer: apiutil.Peer{State: apiutil.PeerState{NeighborAddress: a(addr), SessionState: state}},
	}
}

func TestRIB(t *testing.T) {
	r := newRIB()
	sub := r.subscribe()
	r.setNames(map[netip.Addr]string{a("192.0.2.2"): "node-mesh:h2"})
	now := time.Now()
	pending := func() bool {
		select {
		case <-sub:
			return true
		default:
			return false
		}
	}

	r.onPeer(peerEvent("192.0.2.2", bgp.BGP_FSM_ESTABLISHED), now)
	r.onBestPath([]*apiutil.Path{
		learnedPath(t, "10.65.1.0/26", "192.0.2.2", "192.0.2.2", false, false),
		learnedPath(t, "fd65::40/122", "fd00::2", "192.0.2.2", false, false),
		learnedPath(t, "10.65.9.0/26", "192.0.2.1", "", false, false), // our own
	}, now)
	want := []Route{
		{Prefix: netip.MustParsePrefix("10.65.1.0/26"), NextHop: a("192.0.2.2"), Peer: "node-mesh:h2"},
		{Prefix: netip.MustParsePrefix("fd65::40/122"), NextHop: a("fd00::2"), Peer: "node-mesh:h2"},
	}
	if diff := cmp.Diff(want, r.list(), netipEq); diff != "" || !pending() {
		t.Fatalf("after learning (-want +got):\n%s", diff)
	}

	// The same best path again changes nothing and wakes nobody.
	r.onBestPath([]*apiutil.Path{learnedPath(t, "10.65.1.0/26", "192.0.2.2", "192.0.2.2", false, false)}, now)
	if pending() {
		t.Error("an unchanged best path notified subscribers")
	}

	// The peer goes down: its routes are kept, stale.
	r.onPeer(peerEvent("192.0.2.2", bgp.BGP_FSM_IDLE), now)
	for i := range want {
		want[i].Stale = true
	}
	if diff := cmp.Diff(want, r.list(), netipEq); diff != "" || !pending() {
		t.Fatalf("after peer down (-want +got):\n%s", diff)
	}

	// The peer is back: a route it has not sent again is still stale as
	// GoBGP marks it.
	r.onPeer(peerEvent("192.0.2.2", bgp.BGP_FSM_ESTABLISHED), now)
	r.onBestPath([]*apiutil.Path{learnedPath(t, "10.65.1.0/26", "192.0.2.2", "192.0.2.2", false, true)}, now)
	want[1].Stale = false
	if diff := cmp.Diff(want, r.list(), netipEq); diff != "" || !pending() {
		t.Fatalf("after peer up (-want +got):\n%s", diff)
	}

	// A withdrawal, and our own path winning, remove routes.
	r.onBestPath([]*apiutil.Path{
		learnedPath(t, "10.65.1.0/26", "192.0.2.2", "192.0.2.2", true, false),
		learnedPath(t, "fd65::40/122", "fd00::1", "", false, false),
	}, now)
	if got := r.list(); len(got) != 0 || !pending() {
		t.Fatalf("after withdrawal: %v", got)
	}
}

func TestPeerStatus(t *testing.T) {
	p := wantNeighbor("192.0.2.2", 65000, "global:tor1", nil)
	p.State = &api.PeerState{SessionState: api.PeerState_SESSION_STATE_ACTIVE}
	got := peerStatus(64512, p)
	want := PeerStatus{Name: "global:tor1", Addr: a("192.0.2.2"), ASN: 65000, Type: EBGP, State: "Active"}
	if diff := cmp.Diff(want, got, netipEq); diff != "" {
		t.Errorf("peerStatus (-want +got):\n%s", diff)
	}
}
