package calc

import (
	"cmp"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/selector"
)

// BGP, as Calico configures BIRD (calico-design.md §5): every node speaks
// BGP with its node address as router ID, in the AS of its Node
// (spec.bgp.asNumber) or else the cluster's (BGPConfiguration "default"
// asNumber, 64512 by default). Its sessions are
//
//   - the node-to-node mesh, unless BGPConfiguration nodeToNodeMeshEnabled
//     is false: one session to every other node, per address family the
//     two have addresses of;
//   - BGPPeers that apply to it (global ones, those naming it in node,
//     those whose nodeSelector selects it): to peerIP in asNumber, or to
//     every other node peerSelector selects;
//
// and a node with a routeReflectorClusterID reflects routes for the nodes
// a BGPPeer's peerSelector makes it peer with that are not in its cluster. It advertises its own blocks
// (of pools that allow BGP export) and the addresses its endpoints
// borrowed from other nodes' blocks.

// BGP is this node's desired BGP speaker.
type BGP struct {
	RouterID netip.Addr // the node's IPv4 address
	// IPv6 is the node's IPv6 address (invalid if none), the next hop of
	// its IPv6 paths.
	IPv6 netip.Addr
	// Subnets are the node's own subnets: a learned path is installed
	// only when its next hop is on one of them.
	Subnets []netip.Prefix
	ASN     uint32
	// ClusterID, when set, makes the node a route reflector.
	ClusterID string
	// ListenPort is BGPConfiguration listenPort (0: 179).
	ListenPort int
	Peers      []BGPPeer      // sorted by address
	Paths      []netip.Prefix // what this node advertises, sorted
}

// BGPPeer is one session.
type BGPPeer struct {
	// Name says where the session comes from: "mesh" or
	// "bgppeer/<name>"; Node is the peer's node for node sessions.
	Name string
	Node string
	Addr netip.Addr
	ASN  uint32
	// RRClient says this node reflects routes to the peer.
	RRClient bool
}

// defaultASN is Calico's default AS number.
const defaultASN = uint32(api.DefaultASNumber)

// applyBGPConfig stores a BGPConfiguration or BGPPeer.
func (c *Calc) applyBGP(kind, name string, r api.Resource) {
	switch kind {
	case api.KindBGPConfiguration:
		b, ok := asKind[*api.BGPConfiguration](r)
		if ok && store(c.res.bgpConfs, name, b) {
			c.dirty.bgp = true
		}
	case api.KindBGPPeer:
		p, ok := asKind[*api.BGPPeer](r)
		if ok && store(c.res.bgpPeers, name, p) {
			c.dirty.bgp = true
		}
	}
}

// flushBGP recomputes the desired speaker when anything it depends on
// changed.
func (c *Calc) flushBGP() {
	if !c.dirty.bgp {
		return
	}
	c.dirty.bgp = false
	b := c.computeBGP()
	if !reflect.DeepEqual(b, c.state.BGP) {
		c.track.noteBGP(c.state.BGP)
		c.state.BGP = b
	}
}

// nodeASN is a node's AS number: its own, else the cluster's.
func (c *Calc) nodeASN(n *api.Node) uint32 {
	if n != nil && n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
		return uint32(*n.Spec.BGP.ASNumber)
	}
	if d := c.res.bgpConfs["default"]; d != nil && d.Spec.ASNumber != nil {
		return uint32(*d.Spec.ASNumber)
	}
	return defaultASN
}

func clusterID(n *api.Node) string {
	if n == nil || n.Spec.BGP == nil {
		return ""
	}
	return n.Spec.BGP.RouteReflectorClusterID
}

// computeBGP returns this node's desired speaker, nil without BGP or
// without an IPv4 node address (the router ID).
func (c *Calc) computeBGP() *BGP {
	if !c.routes.bgp {
		return nil
	}
	me := c.res.nodes[c.node]
	v4 := underlay(me, false)
	if !v4.IsValid() {
		return nil
	}
	b := &BGP{RouterID: v4.Addr(), ASN: c.nodeASN(me), ClusterID: clusterID(me), Subnets: []netip.Prefix{v4.Masked()}}
	if v6 := underlay(me, true); v6.IsValid() {
		b.IPv6 = v6.Addr()
		b.Subnets = append(b.Subnets, v6.Masked())
	}
	def := c.res.bgpConfs["default"]
	mesh := true
	if def != nil {
		if def.Spec.NodeToNodeMeshEnabled != nil {
			mesh = *def.Spec.NodeToNodeMeshEnabled
		}
		b.ListenPort = def.Spec.ListenPort
	}
	if mine := c.res.bgpConfs["node."+c.node]; mine != nil && mine.Spec.ListenPort != 0 {
		b.ListenPort = mine.Spec.ListenPort
	}
	seen := map[netip.Addr]bool{}
	add := func(p BGPPeer) {
		if !p.Addr.IsValid() || seen[p.Addr] || p.Addr == v4.Addr() || p.Addr == underlay(me, true).Addr() {
			return
		}
		seen[p.Addr] = true
		b.Peers = append(b.Peers, p)
	}
	nodePeers := func(name string, sel func(*api.Node) bool) {
		for _, other := range sortedNames(c.res.nodes) {
			n := c.res.nodes[other]
			if other == c.node || !sel(n) {
				continue
			}
			// As Calico: a reflector treats the nodes a BGPPeer selects
			// outside its cluster as clients; mesh sessions are plain.
			rr := name != "mesh" && b.ClusterID != "" && clusterID(n) != b.ClusterID
			for _, v6 := range []bool{false, true} {
				if a, mine := underlay(n, v6), underlay(me, v6); a.IsValid() && mine.IsValid() {
					add(BGPPeer{Name: name, Node: other, Addr: a.Addr(), ASN: c.nodeASN(n), RRClient: rr})
				}
			}
		}
	}
	if mesh {
		nodePeers("mesh", func(*api.Node) bool { return true })
	}
	var myLabels map[string]string
	if me != nil {
		myLabels = me.Metadata.Labels
	}
	for _, name := range sortedNames(c.res.bgpPeers) {
		p := c.res.bgpPeers[name]
		s := p.Spec
		switch {
		case s.Node != "" && s.Node != c.node:
			continue
		case s.Node == "" && !selects(s.NodeSelector, myLabels, true):
			continue
		}
		if s.PeerSelector != "" {
			nodePeers("bgppeer/"+name, func(n *api.Node) bool { return selects(s.PeerSelector, n.Metadata.Labels, false) })
			continue
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(s.PeerIP)); err == nil {
			add(BGPPeer{Name: "bgppeer/" + name, Addr: a.Unmap(), ASN: uint32(s.ASNumber)})
		}
	}
	slices.SortFunc(b.Peers, func(x, y BGPPeer) int { return x.Addr.Compare(y.Addr) })
	b.Paths = c.bgpPaths()
	return b
}

// selects evaluates a selector; an empty one selects all when emptyAll,
// nothing otherwise, and one that does not parse selects nothing.
func selects(expr string, labels map[string]string, emptyAll bool) bool {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return emptyAll
	}
	s, err := selector.Parse(expr)
	return err == nil && s.Evaluate(labels)
}

// bgpPaths returns what this node advertises: its blocks in pools that
// allow BGP export, and the addresses its endpoints borrowed.
func (c *Calc) bgpPaths() []netip.Prefix {
	var out []netip.Prefix
	for p, owners := range c.routes.owners {
		if len(owners) == 0 || owners[0] != c.node {
			continue
		}
		if pool, _ := c.poolOf(p.Addr()); pool != nil && !pool.Spec.DisableBGPExport {
			out = append(out, p)
		}
	}
	for name := range c.locs.weps {
		for _, a := range wepAddrs(c.res.weps[name]) {
			if c.ownerOf(a) == c.node {
				continue
			}
			if pool, _ := c.poolOf(a); pool != nil && !pool.Spec.DisableBGPExport {
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	slices.SortFunc(out, func(x, y netip.Prefix) int {
		return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
	})
	return slices.Compact(out)
}
