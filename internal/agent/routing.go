package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/dataplane/vxlan"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/vishvananda/netlink"
)

// routingDataplane is the routes between hosts and the VXLAN devices, as
// the reconcile loop drives them: Apply makes the kernel hold calc's
// Routes and VXLAN (writing only what differs), Resync re-reads the
// kernel first.
type routingDataplane interface {
	Resync(ctx context.Context) error
	Apply(ctx context.Context, st *calc.State, now time.Time) error
	NextPrune() (time.Time, bool)
}

// routing is the routingDataplane of a host: the VXLAN reconciler for
// the devices and their peers' entries, then the remote-route reconciler
// for the routes (a route via a VXLAN device needs the device first).
type routing struct {
	remote *route.Remote
	vx     *vxlan.Reconciler
	// underlayMTU returns the MTU of the interface holding a local
	// address; a VXLAN device with no configured MTU takes that less the
	// encapsulation.
	underlayMTU func(local netip.Addr) (int, error)
	// learned returns the BGP speaker's best paths whose next hops are on
	// the given subnets (nil: no BGP).
	learned func(subnets []netip.Prefix) []route.RemoteRoute
	log     *slog.Logger
}

var _ routingDataplane = (*routing)(nil)

// defaultUnderlayMTU is assumed when the underlay interface cannot be
// found (its address moved): Ethernet's.
const defaultUnderlayMTU = 1500

// Resync implements routingDataplane.
func (r *routing) Resync(ctx context.Context) error {
	return errors.Join(r.vx.Resync(ctx), r.remote.Resync(ctx))
}

// NextPrune implements routingDataplane.
func (r *routing) NextPrune() (time.Time, bool) { return r.remote.NextPrune() }

// Apply implements routingDataplane.
func (r *routing) Apply(ctx context.Context, st *calc.State, now time.Time) error {
	d := vxlan.Desired{V4: r.overlay(st.VXLAN[4]), V6: r.overlay(st.VXLAN[6])}
	var errs []error
	if err := r.vx.Apply(ctx, d); err != nil {
		errs = append(errs, fmt.Errorf("programming VXLAN: %w", err))
	}
	if err := r.remote.Apply(ctx, r.desiredRoutes(st), now); err != nil {
		errs = append(errs, fmt.Errorf("programming routes to other hosts: %w", err))
	}
	return errors.Join(errs...)
}

// desiredRoutes is calc's routes plus, for destinations calc does not
// route, the paths BGP learned, sorted by destination (both lists are, so
// they merge in one pass and the reconciler need not sort 10,000 learned
// routes again on every pass).
func (r *routing) desiredRoutes(st *calc.State) []route.RemoteRoute {
	own := remoteRoutes(st.Routes)
	if r.learned == nil || st.BGP == nil {
		return own
	}
	learned := r.learned(st.BGP.Subnets)
	out := make([]route.RemoteRoute, 0, len(own)+len(learned))
	i := 0
	for _, l := range learned {
		if st.Routes[l.Dst] != nil {
			continue
		}
		for i < len(own) && comparePrefix(own[i].Dst, l.Dst) < 0 {
			out = append(out, own[i])
			i++
		}
		out = append(out, l)
	}
	return append(out, own[i:]...)
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// overlay turns calc's VXLAN device into the reconciler's.
func (r *routing) overlay(v *calc.VXLAN) *vxlan.Overlay {
	if v == nil {
		return nil
	}
	v6 := v.Addr.Is6()
	mtu := v.MTU
	if mtu == 0 {
		under, err := r.underlayMTU(v.Local)
		if err != nil {
			r.log.Warn("reading the underlay MTU; assuming 1500", "address", v.Local, "err", err)
			under = defaultUnderlayMTU
		}
		mtu = vxlan.MTU(under, v6)
	}
	o := &vxlan.Overlay{Device: vxlan.Device{
		VNI: v.VNI, Port: v.Port, MTU: mtu, MAC: v.MAC, Local: v.Local,
		Addr: netip.PrefixFrom(v.Addr, v.Addr.BitLen()),
	}}
	for _, p := range v.Peers {
		o.Peers = append(o.Peers, vxlan.Peer{Node: p.Node, TunnelAddr: p.Addr, MAC: p.MAC, Underlay: p.Underlay})
	}
	return o
}

// remoteRoutes turns calc's routes into the reconciler's, sorted by
// destination. Pure.
func remoteRoutes(rs map[netip.Prefix]*calc.Route) []route.RemoteRoute {
	out := make([]route.RemoteRoute, 0, len(rs))
	for _, p := range slices.SortedFunc(maps.Keys(rs), comparePrefix) {
		r := rs[p]
		out = append(out, route.RemoteRoute{
			Dst: r.Dst, Gw: r.Gw, Dev: r.Dev, OnLink: r.OnLink, Blackhole: r.Kind == calc.RouteLocalBlock,
		})
	}
	return out
}

// watchRoutes follows the namespace's route events until ctx ends, telling
// the loop to re-read the routes when one of Calyx's routes between hosts
// was removed or changed by someone else. A broken subscription (events
// lost) is a drift too: the loop re-reads, and the watch starts again.
func watchRoutes(ctx context.Context, k *route.Netlink, remote *route.Remote, loop *reconcileLoop, log *slog.Logger) error {
	for {
		err := k.WatchRoutes(ctx, loop.driftedRoutes, func(ev route.RouteEvent) {
			if remote.Differs(ev) {
				loop.driftedRoutes()
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("route events interrupted; re-reading the routes", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// underlayMTUTTL is how long a read underlay MTU is reused: every ADD asks
// for it, and reading it takes an address dump and a link lookup. A
// changed underlay MTU reaches new containers within it.
const underlayMTUTTL = 10 * time.Second

// cachedMTU returns read, its answer for the last address reused for ttl.
func cachedMTU(read func(netip.Addr) (int, error), ttl time.Duration, now func() time.Time) func(netip.Addr) (int, error) {
	var mu sync.Mutex
	var last netip.Addr
	var mtu int
	var at time.Time
	return func(a netip.Addr) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if a == last && !at.IsZero() && now().Sub(at) < ttl {
			return mtu, nil
		}
		m, err := read(a)
		if err != nil {
			return 0, err
		}
		last, mtu, at = a, m, now()
		return m, nil
	}
}

// underlayMTU returns the MTU of the link holding addr in h's namespace.
func underlayMTU(h *netlink.Handle, addr netip.Addr) (int, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := nlsafe.AddrList(h, nil, fam)
	if err != nil {
		return 0, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			l, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, fmt.Errorf("reading the link of %s: %w", addr, err)
			}
			return l.Attrs().MTU, nil
		}
	}
	return 0, fmt.Errorf("no interface holds %s", addr)
}

// derivedMTU is the container MTU when neither the CNI config nor --mtu
// sets one: the underlay's (the interface holding the node's IPv4
// address; DefaultMTU when unknown) less the largest VXLAN overhead a
// pool asks for, so that a full-size packet still fits once encapsulated.
func (s *service) derivedMTU() int {
	node, pools := s.view.nodeAndPools()
	under := DefaultMTU
	if node != nil && node.Spec.BGP != nil && s.underlayMTU != nil {
		if p, err := netip.ParsePrefix(node.Spec.BGP.IPv4Address); err == nil {
			if m, err := s.underlayMTU(p.Addr()); err == nil {
				under = m
			}
		}
	}
	return under - vxlanOverhead(pools, under)
}

// vxlanOverhead is the encapsulation overhead of the pools' VXLAN modes:
// 0 without VXLAN, else the larger of the families' overheads. Pure.
func vxlanOverhead(pools []*api.IPPool, underlay int) int {
	overhead := 0
	for _, p := range pools {
		if p.Spec.VXLANMode != api.EncapAlways && p.Spec.VXLANMode != api.EncapCrossSubnet || p.Spec.Disabled {
			continue
		}
		v6 := strings.Contains(p.Spec.CIDR, ":")
		overhead = max(overhead, underlay-vxlan.MTU(underlay, v6))
	}
	return overhead
}
