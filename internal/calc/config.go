package calc

import (
	"cmp"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
)

// Failsafe defaults, as Calico's (calico-design.md §6.2 and later Felix):
// SSH, DHCP, BGP, etcd and the Kubernetes API stay reachable whatever a
// HostEndpoint's policy says. Sorted as failsafes sorts.
func defaultFailsafeInbound() []ProtoPort {
	return []ProtoPort{
		{Protocol: 6, Port: 22}, {Protocol: 6, Port: 179}, {Protocol: 6, Port: 2379},
		{Protocol: 6, Port: 2380}, {Protocol: 6, Port: 6443}, {Protocol: 17, Port: 68},
	}
}

func defaultFailsafeOutbound() []ProtoPort {
	return []ProtoPort{
		{Protocol: 6, Port: 179}, {Protocol: 6, Port: 2379}, {Protocol: 6, Port: 2380},
		{Protocol: 6, Port: 6443}, {Protocol: 17, Port: 53}, {Protocol: 17, Port: 67},
	}
}

// computeConfig derives the host-wide settings from the NodeConfigurations
// ("node.<name>" wins field by field over "default") and the pools.
func (c *Calc) computeConfig() *Config {
	def := c.res.nodeConfs["default"]
	var mine *api.NodeConfiguration
	if c.node != "" {
		mine = c.res.nodeConfs["node."+c.node]
	}
	cfg := &Config{EndpointToHostAction: "Accept"}
	action := ""
	in, out := (*[]api.ProtoPort)(nil), (*[]api.ProtoPort)(nil)
	for _, nc := range []*api.NodeConfiguration{def, mine} {
		if nc == nil {
			continue
		}
		if nc.Spec.DefaultEndpointToHostAction != "" {
			action = nc.Spec.DefaultEndpointToHostAction
		}
		if nc.Spec.FailsafeInboundHostPorts != nil {
			in = nc.Spec.FailsafeInboundHostPorts
		}
		if nc.Spec.FailsafeOutboundHostPorts != nil {
			out = nc.Spec.FailsafeOutboundHostPorts
		}
	}
	if action != "" {
		// An action calc does not know fails closed.
		cfg.EndpointToHostAction = "Drop"
		for _, a := range []string{"Accept", "Drop", "Return"} {
			if strings.EqualFold(a, action) {
				cfg.EndpointToHostAction = a
			}
		}
	}
	cfg.FailsafeInbound = failsafes(in, defaultFailsafeInbound())
	cfg.FailsafeOutbound = failsafes(out, defaultFailsafeOutbound())
	for _, p := range c.res.pools {
		pfx, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil {
			continue
		}
		pfx = pfx.Masked()
		cfg.AllPools = append(cfg.AllPools, pfx)
		if p.Spec.NATOutgoing { // disabled pools masquerade too, as in Calico
			cfg.MasqPools = append(cfg.MasqPools, pfx)
		}
	}
	slices.SortFunc(cfg.AllPools, comparePrefix)
	cfg.AllPools = slices.Compact(cfg.AllPools)
	slices.SortFunc(cfg.MasqPools, comparePrefix)
	cfg.MasqPools = slices.Compact(cfg.MasqPools)
	return cfg
}

// failsafes converts a configured list (nil: use def); entries with an
// unknown protocol or a net that does not parse are skipped, so they open
// nothing.
func failsafes(list *[]api.ProtoPort, def []ProtoPort) []ProtoPort {
	if list == nil {
		return def
	}
	var out []ProtoPort
	for _, p := range *list {
		var proto uint8
		switch strings.ToLower(p.Protocol) {
		case "tcp":
			proto = 6
		case "udp":
			proto = 17
		case "sctp":
			proto = 132
		default:
			continue
		}
		pp := ProtoPort{Protocol: proto, Port: p.Port}
		if p.Net != "" {
			nets := parseNets([]string{p.Net})
			if len(nets) != 1 {
				continue
			}
			pp.Net = nets[0]
		}
		out = append(out, pp)
	}
	slices.SortFunc(out, func(a, b ProtoPort) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), comparePrefix(a.Net, b.Net))
	})
	return slices.Compact(out)
}

// tracker remembers, for each key touched since the last TakeDelta, its
// value before the first touch; TakeDelta reports the keys whose value now
// differs.
type tracker struct {
	eps           map[string]*Endpoint
	heps          map[string]*HostEndpoint
	chains        map[string]*Chain
	sets          map[string]*Set
	configTouched bool
	config        *Config
	routes        map[netip.Prefix]*Route
	vxlanTouched  bool
	vxlan         map[int]*VXLAN
	bgpTouched    bool
	bgp           *BGP
}

func newTracker() tracker {
	return tracker{
		eps: map[string]*Endpoint{}, heps: map[string]*HostEndpoint{},
		chains: map[string]*Chain{}, sets: map[string]*Set{},
		routes: map[netip.Prefix]*Route{},
	}
}

func (t *tracker) noteRoute(p netip.Prefix, old *Route) {
	if _, ok := t.routes[p]; !ok {
		t.routes[p] = old
	}
}

func (t *tracker) noteBGP(old *BGP) {
	if !t.bgpTouched {
		t.bgpTouched, t.bgp = true, old
	}
}

func (t *tracker) noteVXLAN(old map[int]*VXLAN) {
	if !t.vxlanTouched {
		t.vxlanTouched, t.vxlan = true, maps.Clone(old)
	}
}

func noteFirst[T any](m map[string]*T, k string, old *T) {
	if _, ok := m[k]; !ok {
		m[k] = old
	}
}

func (t *tracker) noteEndpoint(k string, old *Endpoint)         { noteFirst(t.eps, k, old) }
func (t *tracker) noteHostEndpoint(k string, old *HostEndpoint) { noteFirst(t.heps, k, old) }
func (t *tracker) noteChain(k string, old *Chain)               { noteFirst(t.chains, k, old) }
func (t *tracker) noteSet(k string, old *Set)                   { noteFirst(t.sets, k, old) }

func (t *tracker) noteConfig(old *Config) {
	if !t.configTouched {
		t.configTouched, t.config = true, old
	}
}

func changed[T any](orig map[string]*T, now map[string]*T) []string {
	var out []string
	for k, o := range orig {
		if n := now[k]; n != o && !reflect.DeepEqual(n, o) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (t *tracker) take(s *State) Delta {
	d := Delta{
		Endpoints:     changed(t.eps, s.Endpoints),
		HostEndpoints: changed(t.heps, s.HostEndpoints),
		Chains:        changed(t.chains, s.Chains),
		Sets:          changed(t.sets, s.Sets),
		Config:        t.configTouched && !reflect.DeepEqual(t.config, s.Config),
		VXLAN:         t.vxlanTouched && !reflect.DeepEqual(t.vxlan, s.VXLAN),
		BGP:           t.bgpTouched && !reflect.DeepEqual(t.bgp, s.BGP),
	}
	for p, o := range t.routes {
		if n := s.Routes[p]; n != o && !reflect.DeepEqual(n, o) {
			d.Routes = append(d.Routes, p)
		}
	}
	slices.SortFunc(d.Routes, comparePrefix)
	*t = newTracker()
	return d
}
