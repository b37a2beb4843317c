package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// DefaultPort is BGP's TCP port, used for listening when Config.ListenPort
// is zero and for dialling a Peer whose Port is zero.
const DefaultPort = 179

// DefaultGracefulRestartTime is the restart time this speaker advertises
// when Config.GracefulRestartTime is zero: how long its peers keep its
// routes while it restarts. 120 s is BIRD's and Calico's default.
const DefaultGracefulRestartTime = 120 * time.Second

// DefaultConnectRetry is how often a session that is down is retried. It
// is far shorter than GoBGP's 120 s so that a peer that restarts is back
// well within the graceful restart time.
const DefaultConnectRetry = 5 * time.Second

// Config is the speaker's own identity. The zero values of the optional
// fields are useful: listen on every address at port 179 and advertise a
// 120 s graceful restart time.
type Config struct {
	// RouterID is the BGP identifier: an IPv4 address, usually the
	// node's, unique in the AS. Required.
	RouterID netip.Addr
	// ASN is this speaker's autonomous system number. Required.
	ASN uint32
	// ListenAddrs are the addresses to accept sessions on; empty means
	// every address (0.0.0.0 and ::). When one of them has a peer's
	// family, sessions to that peer are also opened from it (BIRD's
	// "source address"), so a speaker bound to one address is known by
	// that address whichever side dials.
	ListenAddrs []netip.Addr
	// ListenPort is the TCP port to listen on; 0 means DefaultPort and
	// a negative port means do not listen (dial only).
	ListenPort int
	// GracefulRestartTime is the restart time advertised to peers; 0
	// means DefaultGracefulRestartTime. It is whole seconds on the wire,
	// at most 4095.
	GracefulRestartTime time.Duration
	// ClusterID makes this speaker a route reflector for the peers
	// marked RouteReflectorClient (an IPv4-formatted cluster ID, such as
	// Node.spec.bgp.routeReflectorClusterID). Invalid (zero) means the
	// RouterID is used if any peer is a client.
	ClusterID netip.Addr
}

// Peer is one BGP neighbour Calyx wants: a node-to-node mesh member, a
// global BGPPeer (a ToR) or a node-specific one. The session is iBGP when
// ASN equals Config.ASN, eBGP otherwise; it carries IPv4 and IPv6
// unicast whatever the family of Addr.
type Peer struct {
	// Name identifies the peer in Status and Route, e.g.
	// "node-mesh:h2" or "global:tor1".
	Name string
	// Addr is the neighbour's address; one Peer per address.
	Addr netip.Addr
	// ASN is the neighbour's AS number.
	ASN uint32
	// Port is the neighbour's TCP port; 0 means DefaultPort.
	Port int
	// RouteReflectorClient makes this speaker reflect iBGP routes to and
	// from this peer (with Config.ClusterID).
	RouteReflectorClient bool
	// Passive waits for the neighbour to connect and never dials.
	Passive bool
}

// Path is a route this node originates: one of its IPAM blocks, with the
// node's address of the same family as next hop.
type Path struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
}

// Route is a best path learned from a peer. Routes that this speaker
// originates are never reported.
type Route struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Peer is the Name of the Peer the route was learned from (for a
	// reflected route, the reflector), or its address if it has no name.
	Peer string
	// Stale is set while the route is kept only by graceful restart: its
	// peer's session is down (or the peer restarted and has not yet sent
	// it again). It is removed when the peer's restart time runs out.
	Stale bool
}

// PeerType tells iBGP from eBGP sessions.
type PeerType string

// The session types, as `calyxctl node status` prints them.
const (
	IBGP PeerType = "iBGP"
	EBGP PeerType = "eBGP"
)

// PeerStatus is one session as `calyxctl node status` shows it.
type PeerStatus struct {
	Name string
	Addr netip.Addr
	ASN  uint32
	Type PeerType
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string
	// Since is when the session was last established (while it is) or
	// last went down (while it is not); zero if never.
	Since time.Time
	// Received counts the prefixes received from the peer, Advertised
	// those sent to it, over both address families.
	Received, Advertised int
}

// ErrNotRunning is returned by calls that need the BGP server while Run
// is not running it.
var ErrNotRunning = errors.New("bgp speaker not running")

func (c Config) withDefaults() Config {
	if c.ListenPort == 0 {
		c.ListenPort = DefaultPort
	}
	if c.GracefulRestartTime == 0 {
		c.GracefulRestartTime = DefaultGracefulRestartTime
	}
	return c
}

func (c Config) validate() error {
	if !c.RouterID.Is4() {
		return fmt.Errorf("router ID %v: must be an IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		return errors.New("ASN must not be 0")
	}
	if c.ListenPort > 65535 {
		return fmt.Errorf("listen port %d out of range", c.ListenPort)
	}
	if c.GracefulRestartTime < time.Second || c.GracefulRestartTime > 4095*time.Second {
		return fmt.Errorf("graceful restart time %s: must be between 1s and 4095s", c.GracefulRestartTime)
	}
	if c.ClusterID.IsValid() && !c.ClusterID.Is4() {
		return fmt.Errorf("cluster ID %v: must be IPv4-formatted", c.ClusterID)
	}
	for _, a := range c.ListenAddrs {
		if !a.IsValid() {
			return errors.New("invalid listen address")
		}
	}
	return nil
}
