package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/vishvananda/netlink"
)

// nodeStore is the part of the datastore node registration uses.
type nodeStore interface {
	Get(ctx context.Context, kind api.KindInfo, name string) (api.Resource, error)
	Create(ctx context.Context, r api.Resource) (api.Resource, error)
	Update(ctx context.Context, r api.Resource) (api.Resource, error)
}

// registerNode creates this host's Node, or updates the fields calyx-node
// owns on an existing one, keeping whatever else an operator set there.
func registerNode(ctx context.Context, s nodeStore, cfg Config) (*api.Node, error) {
	kind, _ := api.LookupKind(api.KindNode)
	const attempts = 10
	for i := 0; ; i++ {
		cur, err := s.Get(ctx, kind, cfg.NodeName)
		var node *api.Node
		switch {
		case datastore.IsNotFound(err):
			node = kind.New().(*api.Node)
			node.Metadata.Name = cfg.NodeName
		case err != nil:
			return nil, fmt.Errorf("reading node %q: %w", cfg.NodeName, err)
		default:
			node = cur.(*api.Node)
		}
		desired := node.DeepCopyResource().(*api.Node)
		applyNodeFields(desired, cfg)
		if cur != nil && equalJSON(cur, desired) {
			return node, nil
		}
		desired.SetDefaults()
		if err := desired.Validate(); err != nil {
			return nil, fmt.Errorf("registering node %q: %w", cfg.NodeName, err)
		}
		var out api.Resource
		if cur == nil {
			out, err = s.Create(ctx, desired)
		} else {
			out, err = s.Update(ctx, desired)
		}
		if (datastore.IsConflict(err) || datastore.IsAlreadyExists(err)) && i < attempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registering node %q: %w", cfg.NodeName, err)
		}
		return out.(*api.Node), nil
	}
}

// applyNodeFields sets the fields of a Node that calyx-node's flags own.
func applyNodeFields(n *api.Node, cfg Config) {
	if cfg.NodeIPv4 == "" && cfg.NodeIPv6 == "" && cfg.ASNumber == "" {
		return
	}
	if n.Spec.BGP == nil {
		n.Spec.BGP = &api.NodeBGPSpec{}
	}
	if cfg.NodeIPv4 != "" {
		n.Spec.BGP.IPv4Address = cfg.NodeIPv4
	}
	if cfg.NodeIPv6 != "" {
		n.Spec.BGP.IPv6Address = cfg.NodeIPv6
	}
	if cfg.ASNumber != "" {
		asn, _ := api.ParseASNumber(cfg.ASNumber) // checked in validate
		n.Spec.BGP.ASNumber = &asn
	}
}

func equalJSON(a, b api.Resource) bool {
	ab, err1 := api.MarshalStored(a)
	bb, err2 := api.MarshalStored(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}

// defaultRoute is an IPv4 default route: the link it leaves through and
// its metric.
type defaultRoute struct {
	link   int
	metric int
}

// pickNodeAddr chooses the node's address of a family: the first global
// address (in address order) of the link holding the lowest-metric
// default route. Pure.
func pickNodeAddr(defaults []defaultRoute, addrs map[int][]netip.Prefix, v6 bool) (netip.Prefix, bool) {
	slices.SortStableFunc(defaults, func(a, b defaultRoute) int { return a.metric - b.metric })
	for _, d := range defaults {
		as := slices.Clone(addrs[d.link])
		slices.SortFunc(as, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		for _, p := range as {
			if p.Addr().Is6() == v6 && p.Addr().IsGlobalUnicast() {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// errNoDefaultRoute says that --ip (or --ip6) cannot be detected.
var errNoDefaultRoute = errors.New("no default route with a global address on its interface")

// detectNodeAddr returns the address and prefix of the interface that
// holds the default route of a family in h's namespace, e.g.
// "10.0.0.5/24".
func detectNodeAddr(h *netlink.Handle, v6 bool) (string, error) {
	fam := netlink.FAMILY_V4
	if v6 {
		fam = netlink.FAMILY_V6
	}
	routes, err := nlsafe.RouteListFiltered(h, fam, &netlink.Route{}, 0)
	if err != nil {
		return "", fmt.Errorf("detecting the node address: %w", err)
	}
	var defaults []defaultRoute
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		link := r.LinkIndex
		if link == 0 && len(r.MultiPath) > 0 {
			link = r.MultiPath[0].LinkIndex
		}
		defaults = append(defaults, defaultRoute{link: link, metric: r.Priority})
	}
	list, err := nlsafe.AddrList(h, nil, fam)
	if err != nil {
		return "", fmt.Errorf("detecting the node address: %w", err)
	}
	addrs := map[int][]netip.Prefix{}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Scope != int(netlink.SCOPE_UNIVERSE) {
			continue
		}
		ones, _ := a.Mask.Size()
		addrs[a.LinkIndex] = append(addrs[a.LinkIndex], netip.PrefixFrom(ip.Unmap(), ones))
	}
	p, ok := pickNodeAddr(defaults, addrs, v6)
	if !ok {
		return "", fmt.Errorf("detecting the node address: %w", errNoDefaultRoute)
	}
	return p.String(), nil
}
