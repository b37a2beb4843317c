package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/vxlan"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/selector"
)

// VXLAN tunnel addresses. A host whose pools ask for VXLAN needs an
// address of its own on its VXLAN device, the next hop its peers route
// this host's blocks through. As in Calico, calyx-node allocates it from
// IPAM (a pool with vxlanMode Always or CrossSubnet whose allowedUses
// include Tunnel and whose nodeSelector selects the node) under a handle
// named for the node, and records it with the device's MAC in its Node
// (spec.ipv4VXLANTunnelAddr, ipv6VXLANTunnelAddr, vxlanTunnelMACAddr),
// where calc on every host reads it. When no such pool is left, the
// address is released and the field cleared.

// tunnelHandle is the IPAM handle of a node's tunnel address of a family.
func tunnelHandle(node string, v6 bool) string {
	if v6 {
		return "vxlan-v6-tunnel-addr-" + node
	}
	return "vxlan-tunnel-addr-" + node
}

// tunnelPools returns the names of the pools a node's tunnel address of a
// family may come from. Pure.
func tunnelPools(n *api.Node, pools []*api.IPPool, v6 bool) []string {
	var labels map[string]string
	if n != nil {
		labels = n.Metadata.Labels
	}
	var out []string
	for _, p := range pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || pfx.Addr().Is6() != v6 || p.Spec.Disabled {
			continue
		}
		if p.Spec.VXLANMode != api.EncapAlways && p.Spec.VXLANMode != api.EncapCrossSubnet {
			continue
		}
		uses := p.Spec.AllowedUses
		if len(uses) > 0 && !containsFold(uses, api.IPPoolUseTunnel) {
			continue
		}
		if s := strings.TrimSpace(p.Spec.NodeSelector); s != "" && s != "all()" {
			sel, err := selector.Parse(s)
			if err != nil || !sel.Evaluate(labels) {
				continue
			}
		}
		out = append(out, p.Metadata.Name)
	}
	return out
}

func containsFold(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// inPools reports whether addr lies in one of the named pools.
func inPools(addr string, names []string, pools []*api.IPPool) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, p := range pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err == nil && pfx.Contains(a) && containsFold(names, p.Metadata.Name) {
			return true
		}
	}
	return false
}

// tunnelField returns a pointer to the Node's tunnel address of a family.
func tunnelField(n *api.Node, v6 bool) *string {
	if v6 {
		return &n.Spec.IPv6VXLANTunnelAddr
	}
	return &n.Spec.IPv4VXLANTunnelAddr
}

// ensureTunnelAddrs makes this node's tunnel addresses match its pools:
// allocated and recorded when a VXLAN pool selects it, released and
// cleared when none does.
func (s *service) ensureTunnelAddrs(ctx context.Context) error {
	node, pools := s.view.nodeAndPools()
	if node == nil {
		return nil // the syncer has not delivered it yet
	}
	var errs []error
	for _, v6 := range []bool{false, true} {
		names := tunnelPools(node, pools, v6)
		cur := *tunnelField(node, v6)
		handle := tunnelHandle(s.node, v6)
		switch {
		case len(names) == 0 && cur == "":
			continue
		case len(names) > 0 && inPools(cur, names, pools) && node.Spec.VXLANTunnelMACAddr != "":
			continue
		case len(names) == 0:
			if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil && !ipam.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("releasing tunnel address %s: %w", cur, err))
				continue
			}
			errs = append(errs, s.updateNode(ctx, func(n *api.Node) { *tunnelField(n, v6) = "" }))
			s.log.Info("VXLAN tunnel address released: no VXLAN pool selects this node", "address", cur)
			continue
		}
		addr, err := s.tunnelAddr(ctx, handle, cur, names, pools, v6)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mac := vxlan.MACFor(s.node).String()
		err = s.updateNode(ctx, func(n *api.Node) {
			*tunnelField(n, v6) = addr.String()
			n.Spec.VXLANTunnelMACAddr = mac
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cur != addr.String() {
			s.log.Info("VXLAN tunnel address assigned", "address", addr, "mac", mac)
		}
	}
	return errors.Join(errs...)
}

// tunnelAddr returns the node's tunnel address of a family from the named
// pools: the one its handle holds there, or a new one. An address the
// handle holds outside them (its pool stopped asking for VXLAN) is
// released first.
func (s *service) tunnelAddr(ctx context.Context, handle, cur string, names []string, pools []*api.IPPool, v6 bool) (netip.Addr, error) {
	held, err := s.alloc.IPsByHandle(ctx, handle)
	if err != nil && !ipam.IsNotFound(err) {
		return netip.Addr{}, fmt.Errorf("reading tunnel address handle %s: %w", handle, err)
	}
	for _, a := range held {
		if a.Is6() == v6 && inPools(a.String(), names, pools) {
			return a, nil
		}
	}
	if len(held) > 0 {
		if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil && !ipam.IsNotFound(err) {
			return netip.Addr{}, fmt.Errorf("releasing tunnel address %s: %w", cur, err)
		}
	}
	args := ipam.AutoAssignArgs{
		Handle: handle, Node: s.node, Use: api.IPPoolUseTunnel,
		Attrs: map[string]string{"node": s.node, ipam.AttrType: ipam.AttrTypeTunnel},
	}
	if v6 {
		args.Num6, args.IPv6Pools = 1, names
	} else {
		args.Num4, args.IPv4Pools = 1, names
	}
	res, err := s.alloc.AutoAssign(ctx, args)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocating a VXLAN tunnel address from %s: %w", strings.Join(names, ", "), err)
	}
	got := res.IPv4
	if v6 {
		got = res.IPv6
	}
	if len(got) == 0 {
		return netip.Addr{}, fmt.Errorf("allocating a VXLAN tunnel address from %s: none assigned", strings.Join(names, ", "))
	}
	return got[0], nil
}

// updateNode applies edit to this node's Node, retrying on conflicts.
func (s *service) updateNode(ctx context.Context, edit func(*api.Node)) error {
	kind, _ := api.LookupKind(api.KindNode)
	for range 10 {
		cur, err := s.store.Get(ctx, kind, s.node)
		if err != nil {
			return fmt.Errorf("reading node %q: %w", s.node, err)
		}
		n := cur.DeepCopyResource().(*api.Node)
		edit(n)
		if equalJSON(cur, n) {
			return nil
		}
		if _, err := s.store.Update(ctx, n); datastore.IsConflict(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("updating node %q: %w", s.node, err)
		}
		return nil
	}
	return fmt.Errorf("updating node %q: it kept changing under the update", s.node)
}

// runTunnelAddrs keeps the tunnel addresses current as the pools and the
// Node change, retrying failures with a backoff.
func (s *service) runTunnelAddrs(ctx context.Context, changes <-chan struct{}, log *slog.Logger) {
	if s.view.waitReady(ctx) != nil {
		return
	}
	delay := time.Duration(0)
	for {
		var wait <-chan time.Time
		cctx, cancel := context.WithTimeout(ctx, cmp.Or(s.dsTimeout, time.Minute))
		err := s.ensureTunnelAddrs(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			delay = min(max(2*delay, 500*time.Millisecond), 30*time.Second)
			log.Warn("keeping the VXLAN tunnel addresses; retrying", "err", err, "retry_in", delay)
			wait = time.After(delay)
		} else {
			delay = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-wait:
		}
	}
}
