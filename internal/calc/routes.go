package calc

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
)

// Routing between hosts (calico-design.md §4.5, §5): every IPAM block
// lives on the node that claimed it, so a route to the block leads to that
// node; an address a node borrowed from another node's block gets a /32
// (or /128) of its own, more specific than the block's route. How a route
// leads to a node depends on the block's pool:
//
//   - vxlanMode Always, or CrossSubnet when the two nodes' underlay
//     addresses are on different subnets: via the node's VXLAN tunnel
//     address, onlink through the VXLAN device;
//   - otherwise natively: via the node's underlay address, which must be
//     on this host's subnet. With BGP on, native routes are BGP's to
//     install (it learns them from its peers); without it, calc programs
//     them from the affinities.
//
// This node's own blocks get a blackhole route: an address of a local
// block with no endpoint behind it is dropped here instead of bouncing
// back along a default route. Routes are kept per destination and
// recomputed only for the destinations a change touches: an affinity its
// block and the addresses inside it, an endpoint its addresses; a change
// of a Node, a pool or the settings recomputes them all (those are rare).

// VXLAN device names: one device per family, as Calico's vxlan.calico and
// vxlan-v6.calico.
const (
	VXLANDevice4 = "vxlan.calyx"
	VXLANDevice6 = "vxlan-v6.calyx"
)

// VXLAN defaults (NodeConfiguration vxlanVNI, vxlanPort).
const (
	DefaultVXLANVNI  = 4096
	DefaultVXLANPort = 4789
)

// Route kinds, for diagnostics and the golden text.
const (
	RouteLocalBlock = "local-block" // blackhole for a block of this node
	RouteNative     = "native"      // via the other node's underlay address
	RouteVXLAN      = "vxlan"       // via its tunnel address on the VXLAN device
)

// Route is one route to another host's addresses, or a blackhole for
// this host's own blocks. Endpoint routes (to local workloads) are not
// Routes: they belong to their Endpoint.
type Route struct {
	Dst  netip.Prefix
	Kind string // RouteLocalBlock, RouteNative or RouteVXLAN
	// Node is the node the route leads to (this node for a blackhole).
	Node string
	// Gw is the next hop, Dev the device ("" lets the kernel choose by
	// the gateway) and OnLink says the gateway is reached on Dev without
	// a route to it (the VXLAN peers' tunnel addresses).
	Gw     netip.Addr
	Dev    string
	OnLink bool
	// Borrowed says Dst is one address a node uses from a block another
	// node claimed.
	Borrowed bool
}

// VXLAN is this host's VXLAN device of one family and its peers.
type VXLAN struct {
	Name string // VXLANDevice4 or VXLANDevice6
	VNI  int
	Port int
	// MTU is NodeConfiguration's vxlanMTU (IPv4 only); 0 means derived
	// from the underlay.
	MTU int
	MAC net.HardwareAddr
	// Local is this node's underlay address, the source of encapsulated
	// packets; Addr is the device's tunnel address.
	Local, Addr netip.Addr
	// Peers are the other nodes with a tunnel address of this family,
	// sorted by node name.
	Peers []VXLANPeer
}

// VXLANPeer is another node's VXLAN endpoint.
type VXLANPeer struct {
	Node     string
	Addr     netip.Addr // its tunnel address
	MAC      net.HardwareAddr
	Underlay netip.Addr // where encapsulated packets go
}

// routeIndex is what routing needs beyond the stored resources.
type routeIndex struct {
	affinities map[string]*api.BlockAffinity
	// owners are the nodes claiming each block (normally one).
	owners map[netip.Prefix][]string
	// hosts are the workload endpoints holding each address.
	hosts map[netip.Addr][]string
	bgp   bool
}

func newRouteIndex() routeIndex {
	return routeIndex{
		affinities: map[string]*api.BlockAffinity{},
		owners:     map[netip.Prefix][]string{},
		hosts:      map[netip.Addr][]string{},
	}
}

// Option configures a Calc.
type Option func(*Calc)

// WithBGP says that a BGP speaker installs native routes between hosts, so
// calc leaves them out (VXLAN routes and blackholes stay calc's).
func WithBGP(on bool) Option { return func(c *Calc) { c.routes.bgp = on } }

// affinityBlock parses a BlockAffinity's block.
func affinityBlock(a *api.BlockAffinity) (netip.Prefix, bool) {
	if a == nil {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(a.Spec.CIDR)
	if err != nil || a.Spec.Node == "" {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

func (c *Calc) applyAffinity(name string, a *api.BlockAffinity) {
	old := c.routes.affinities[name]
	if !store(c.routes.affinities, name, a) {
		return
	}
	if p, ok := affinityBlock(old); ok {
		c.routes.owners[p] = removeSorted(c.routes.owners[p], old.Spec.Node)
		if len(c.routes.owners[p]) == 0 {
			delete(c.routes.owners, p)
		}
		c.markBlockDirty(p)
	}
	if p, ok := affinityBlock(a); ok {
		c.routes.owners[p] = insertSorted(c.routes.owners[p], a.Spec.Node)
		c.markBlockDirty(p)
	}
	c.dirty.bgp = true
}

// markBlockDirty marks a block and every endpoint address inside it.
func (c *Calc) markBlockDirty(p netip.Prefix) {
	c.dirty.routes[p] = struct{}{}
	for a := range c.routes.hosts {
		if p.Contains(a) {
			c.dirty.routes[netip.PrefixFrom(a, a.BitLen())] = struct{}{}
		}
	}
}

// wepRouteAddrs indexes a WEP's addresses for routing, old ones out and
// new ones in, marking each dirty.
func (c *Calc) wepRouteAddrs(name string, old, w *api.WorkloadEndpoint) {
	for _, a := range wepAddrs(old) {
		c.routes.hosts[a] = removeSorted(c.routes.hosts[a], name)
		if len(c.routes.hosts[a]) == 0 {
			delete(c.routes.hosts, a)
		}
		c.dirty.routes[netip.PrefixFrom(a, a.BitLen())] = struct{}{}
	}
	for _, a := range wepAddrs(w) {
		c.routes.hosts[a] = insertSorted(c.routes.hosts[a], name)
		c.dirty.routes[netip.PrefixFrom(a, a.BitLen())] = struct{}{}
	}
}

// wepAddrs returns the addresses of a WEP's ipNetworks.
func wepAddrs(w *api.WorkloadEndpoint) []netip.Addr {
	if w == nil {
		return nil
	}
	var out []netip.Addr
	for _, s := range w.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(s); err == nil && p.IsSingleIP() {
			out = append(out, p.Addr().Unmap())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func insertSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(slices.Clone(s), i, v)
}

func removeSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if !found {
		return s
	}
	return slices.Delete(slices.Clone(s), i, i+1)
}

// flushRoutes recomputes the dirty destinations, or all of them, and the
// VXLAN devices.
func (c *Calc) flushRoutes() {
	if c.dirty.routesAll {
		c.dirty.routesAll = false
		c.dirty.bgp = true
		for p := range c.state.Routes {
			c.dirty.routes[p] = struct{}{}
		}
		for p := range c.routes.owners {
			c.dirty.routes[p] = struct{}{}
		}
		for a := range c.routes.hosts {
			c.dirty.routes[netip.PrefixFrom(a, a.BitLen())] = struct{}{}
		}
		for _, fam := range []int{4, 6} {
			v := c.computeVXLAN(fam)
			if old := c.state.VXLAN[fam]; !reflect.DeepEqual(old, v) {
				c.track.noteVXLAN(c.state.VXLAN)
				if v == nil {
					delete(c.state.VXLAN, fam)
				} else {
					c.state.VXLAN[fam] = v
				}
			}
		}
	}
	for p := range c.dirty.routes {
		r := c.computeRoute(p)
		old := c.state.Routes[p]
		if reflect.DeepEqual(old, r) {
			continue
		}
		c.track.noteRoute(p, old)
		if r == nil {
			delete(c.state.Routes, p)
		} else {
			c.state.Routes[p] = r
		}
	}
	clear(c.dirty.routes)
}

// poolOf returns the pool containing a, and its block size; nil if none.
func (c *Calc) poolOf(a netip.Addr) (*api.IPPool, int) {
	// The longest prefix wins, then the first name: no sort, as this
	// runs for every address an endpoint event touches.
	var best *api.IPPool
	bestBits, bestName := -1, ""
	for name, p := range c.res.pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || !pfx.Masked().Contains(a) || pfx.Bits() < bestBits || pfx.Bits() == bestBits && name > bestName {
			continue
		}
		best, bestBits, bestName = p, pfx.Bits(), name
	}
	if best == nil {
		return nil, 0
	}
	bs := best.Spec.BlockSize
	if bs == 0 {
		bs = 26
		if a.Is6() {
			bs = 122
		}
	}
	return best, bs
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ownerOf returns the node claiming the block that holds a ("" if none).
func (c *Calc) ownerOf(a netip.Addr) string {
	_, bs := c.poolOf(a)
	if bs == 0 {
		return ""
	}
	p, err := a.Prefix(bs)
	if err != nil {
		return ""
	}
	if o := c.routes.owners[p]; len(o) > 0 {
		return o[0]
	}
	return ""
}

// computeRoute returns the route to dst, or nil.
func (c *Calc) computeRoute(dst netip.Prefix) *Route {
	// An address a remote endpoint borrowed from a block its node does
	// not own needs a route of its own.
	if dst.IsSingleIP() {
		if names := c.routes.hosts[dst.Addr()]; len(names) > 0 {
			if w := c.res.weps[names[0]]; w != nil {
				node := w.Spec.Node
				if node != c.node && node != "" && c.ownerOf(dst.Addr()) != node {
					if r := c.routeTo(node, dst); r != nil {
						r.Borrowed = true
						return r
					}
					return nil
				}
			}
		}
	}
	owners := c.routes.owners[dst]
	if len(owners) == 0 {
		return nil
	}
	if owners[0] == c.node || slices.Contains(owners, c.node) {
		return &Route{Dst: dst, Kind: RouteLocalBlock, Node: c.node}
	}
	return c.routeTo(owners[0], dst)
}

// routeTo returns the route to dst on node, by its pool's mode, or nil
// when the node cannot be reached (no address, no tunnel, another subnet
// without encapsulation, or native routes left to BGP).
func (c *Calc) routeTo(node string, dst netip.Prefix) *Route {
	pool, _ := c.poolOf(dst.Addr())
	if pool == nil {
		return nil
	}
	v6 := dst.Addr().Is6()
	me, peer := underlay(c.res.nodes[c.node], v6), underlay(c.res.nodes[node], v6)
	sameSubnet := me.IsValid() && peer.IsValid() && me.Masked().Contains(peer.Addr())
	switch mode := pool.Spec.VXLANMode; {
	case mode == api.EncapAlways, mode == api.EncapCrossSubnet && !sameSubnet:
		fam := 4
		if v6 {
			fam = 6
		}
		dev := c.state.VXLAN[fam]
		p := dev.peer(node)
		if p == nil {
			return nil
		}
		return &Route{Dst: dst, Kind: RouteVXLAN, Node: node, Gw: p.Addr, Dev: dev.Name, OnLink: true}
	case c.routes.bgp || !sameSubnet:
		return nil
	default:
		return &Route{Dst: dst, Kind: RouteNative, Node: node, Gw: peer.Addr()}
	}
}

// peer returns the VXLAN peer of node, or nil.
func (v *VXLAN) peer(node string) *VXLANPeer {
	if v == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(v.Peers, node, func(p VXLANPeer, n string) int { return cmp.Compare(p.Node, n) })
	if !ok {
		return nil
	}
	return &v.Peers[i]
}

// underlay returns a node's underlay address and subnet of one family
// (spec.bgp.ipv4Address or ipv6Address), invalid if it has none.
func underlay(n *api.Node, v6 bool) netip.Prefix {
	if n == nil || n.Spec.BGP == nil {
		return netip.Prefix{}
	}
	s := n.Spec.BGP.IPv4Address
	if v6 {
		s = n.Spec.BGP.IPv6Address
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Is6() != v6 {
		return netip.Prefix{}
	}
	return p
}

// tunnel returns a node's VXLAN tunnel address of one family and its MAC.
func tunnel(n *api.Node, v6 bool) (netip.Addr, net.HardwareAddr, bool) {
	if n == nil {
		return netip.Addr{}, nil, false
	}
	s := n.Spec.IPv4VXLANTunnelAddr
	if v6 {
		s = n.Spec.IPv6VXLANTunnelAddr
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Is6() != v6 {
		return netip.Addr{}, nil, false
	}
	mac, err := net.ParseMAC(n.Spec.VXLANTunnelMACAddr)
	if err != nil || len(mac) != 6 {
		return netip.Addr{}, nil, false
	}
	return a, mac, true
}

// computeVXLAN returns this node's VXLAN device of a family: present when
// a pool of the family asks for VXLAN and this node has a tunnel address
// and an underlay address of the family.
func (c *Calc) computeVXLAN(fam int) *VXLAN {
	v6 := fam == 6
	wanted := false
	for _, p := range c.res.pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err == nil && pfx.Addr().Is6() == v6 && (p.Spec.VXLANMode == api.EncapAlways || p.Spec.VXLANMode == api.EncapCrossSubnet) {
			wanted = true
		}
	}
	me := c.res.nodes[c.node]
	addr, mac, ok := tunnel(me, v6)
	local := underlay(me, v6)
	if !wanted || !ok || !local.IsValid() || c.vxlanDisabled() {
		return nil
	}
	v := &VXLAN{Name: VXLANDevice4, VNI: DefaultVXLANVNI, Port: DefaultVXLANPort, MAC: mac, Local: local.Addr(), Addr: addr}
	if v6 {
		v.Name = VXLANDevice6
	}
	c.vxlanSettings(v, v6)
	for _, name := range sortedNames(c.res.nodes) {
		if name == c.node {
			continue
		}
		n := c.res.nodes[name]
		a, m, ok := tunnel(n, v6)
		u := underlay(n, v6)
		if !ok || !u.IsValid() {
			continue
		}
		v.Peers = append(v.Peers, VXLANPeer{Node: name, Addr: a, MAC: m, Underlay: u.Addr()})
	}
	return v
}

// vxlanSettings applies NodeConfiguration's VXLAN settings ("node.<name>"
// wins field by field over "default").
func (c *Calc) vxlanSettings(v *VXLAN, v6 bool) {
	for _, name := range []string{"default", "node." + c.node} {
		nc := c.res.nodeConfs[name]
		if nc == nil {
			continue
		}
		s := nc.Spec
		if s.VXLANVNI != nil {
			v.VNI = *s.VXLANVNI
		}
		if s.VXLANPort != nil {
			v.Port = *s.VXLANPort
		}
		if !v6 && s.VXLANMTU != nil {
			v.MTU = *s.VXLANMTU
		}
	}
}

// vxlanDisabled reports whether NodeConfiguration's vxlanEnabled is false
// for this node.
func (c *Calc) vxlanDisabled() bool {
	off := false
	for _, name := range []string{"default", "node." + c.node} {
		if nc := c.res.nodeConfs[name]; nc != nil && nc.Spec.VXLANEnabled != nil {
			off = !*nc.Spec.VXLANEnabled
		}
	}
	return off
}

// String renders a route as `ip route` would, with its kind and node.
func (r *Route) String() string {
	var b strings.Builder
	if r.Kind == RouteLocalBlock {
		b.WriteString("blackhole ")
	}
	b.WriteString(r.Dst.String())
	if r.Gw.IsValid() {
		b.WriteString(" via " + r.Gw.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	fmt.Fprintf(&b, " (%s to %s", r.Kind, r.Node)
	if r.Borrowed {
		b.WriteString(", borrowed")
	}
	b.WriteString(")")
	return b.String()
}
