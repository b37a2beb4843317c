package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/calc"
)

// params sizes one generated workload.
type params struct {
	Seed uint64
	// Policies is the number of GlobalNetworkPolicies, Endpoints the
	// number of local workload endpoints.
	Policies, Endpoints int
	// PerEndpoint is how many policies select each endpoint (ingress;
	// every other one of them also has egress rules). Policies must be a multiple
	// of it.
	PerEndpoint int
	// BigSet is the number of addresses the one large selector
	// (role == "client") resolves to.
	BigSet int
	// RoleSets is the number of small selector sets (role == "rN") and
	// RoleMembers the addresses in each.
	RoleSets, RoleMembers int
}

// validate names the first field that cannot be generated.
func (p params) validate() error {
	switch {
	case p.Policies <= 0:
		return fmt.Errorf("params.Policies: want > 0, got %d", p.Policies)
	case p.Endpoints <= 0 || p.Endpoints > 1<<16-2:
		return fmt.Errorf("params.Endpoints: want 1..65534, got %d", p.Endpoints)
	case p.PerEndpoint <= 0 || p.Policies%p.PerEndpoint != 0:
		return fmt.Errorf("params.PerEndpoint: want a divisor of Policies (%d), got %d", p.Policies, p.PerEndpoint)
	case p.BigSet <= 0 || p.BigSet > 1<<20:
		return fmt.Errorf("params.BigSet: want 1..%d, got %d", 1<<20, p.BigSet)
	case p.RoleSets <= 0 || p.RoleMembers <= 0:
		return fmt.Errorf("params.RoleSets, RoleMembers: want > 0, got %d, %d", p.RoleSets, p.RoleMembers)
	}
	return nil
}

// Set IDs of the generated workload; role sets are roleSetID(i).
const (
	bigSetID  = "sel-client"
	netsSetID = "nets-private"
	profileID = "default"
	// clientAddr is in the big set: B4's client sends from it.
	clientAddr = "10.128.0.1"
	// Port of the flow B4 measures (iperf3's): every policy's last two
	// ingress rules allow it from the big set, UDP and TCP.
	benchPort = 5201
)

func roleSetID(i int) string { return fmt.Sprintf("sel-role-r%d", i) }

func chainID(kind, name, dir string) string {
	p := map[[2]string]string{
		{calc.KindPolicy, calc.Ingress}: "pi-", {calc.KindPolicy, calc.Egress}: "po-",
		{calc.KindProfile, calc.Ingress}: "pri-", {calc.KindProfile, calc.Egress}: "pro-",
	}[[2]string{kind, dir}]
	return p + name
}

// generate builds the desired state of one host: p.Endpoints local
// endpoints, each selected by p.PerEndpoint of p.Policies policies
// (app == "aN"), whose rules refer to the big client set, small role
// sets and a net list. The same seed gives the same state.
//
// It builds the calc.State directly from the shared types rather than
// through calc, so it depends only on the contract in internal/calc/types.go.
func generate(p params) (*calc.State, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	s := &calc.State{
		Endpoints: map[string]*calc.Endpoint{}, HostEndpoints: map[string]*calc.HostEndpoint{},
		Chains: map[string]*calc.Chain{}, Sets: map[string]*calc.Set{},
		Config: &calc.Config{EndpointToHostAction: "Accept"},
	}
	// The big set: the client address plus distinct random addresses in
	// 10.128.0.0/9 (remote endpoints elsewhere in the cluster).
	big := map[netip.Addr]bool{netip.MustParseAddr(clientAddr): true}
	for len(big) < p.BigSet {
		big[netip.AddrFrom4([4]byte{10, 128 | byte(rng.IntN(128)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})] = true
	}
	s.Sets[bigSetID] = addrSet(bigSetID, `selector role == "client"`, big)
	for i := range p.RoleSets {
		m := map[netip.Addr]bool{}
		for len(m) < p.RoleMembers {
			m[netip.AddrFrom4([4]byte{10, 64 + byte(i%64), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})] = true
		}
		s.Sets[roleSetID(i)] = addrSet(roleSetID(i), fmt.Sprintf(`selector role == "r%d"`, i), m)
	}
	s.Sets[netsSetID] = &calc.Set{ID: netsSetID, Kind: calc.AddrSet, Describe: "nets 172.16.0.0/12,192.168.0.0/16",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}}

	for _, dir := range []string{calc.Ingress, calc.Egress} {
		id := chainID(calc.KindProfile, profileID, dir)
		s.Chains[id] = &calc.Chain{ID: id, Kind: calc.KindProfile, Name: profileID, Dir: dir,
			Rules: []calc.Rule{{Index: 0, Action: calc.ActionAllow}}}
	}
	groups := p.Policies / p.PerEndpoint
	for j := range p.Policies {
		for _, c := range policyChains(rng, p, j) {
			s.Chains[c.ID] = c
		}
	}
	for i := range p.Endpoints {
		ep := endpoint(i, groups, p.Policies)
		s.Endpoints[ep.Name] = ep
	}
	return s, nil
}

// policyName is policy j's name; names sort in order of j.
func policyName(j int) string { return fmt.Sprintf("p%05d", j) }

// hasEgress reports whether policy j has egress rules: every other
// policy of each group (the first, third, ...).
func hasEgress(j, groups int) bool { return (j/groups)%2 == 0 }

// policyChains returns policy j's ingress chain and, if hasEgress, its
// egress chain.
func policyChains(rng *rand.Rand, p params, j int) []*calc.Chain {
	tcp, udp := uint8(6), uint8(17)
	port := uint16(1024 + rng.IntN(7000))
	in := &calc.Chain{ID: chainID(calc.KindPolicy, policyName(j), calc.Ingress), Kind: calc.KindPolicy,
		Name: policyName(j), Dir: calc.Ingress, Rules: []calc.Rule{
			{Index: 0, Action: calc.ActionAllow, Protocol: &tcp,
				Src: calc.Match{Sets: []string{roleSetID(rng.IntN(p.RoleSets))}},
				Dst: calc.Match{Ports: []calc.PortRange{{Min: port, Max: port}, {Min: 8000, Max: 8100}}}},
			{Index: 1, Action: calc.ActionDeny, Protocol: &udp, Src: calc.Match{Sets: []string{netsSetID}},
				Dst: calc.Match{Ports: []calc.PortRange{{Min: 53, Max: 53}}}},
			{Index: 2, Action: calc.ActionAllow, Protocol: &udp, Src: calc.Match{Sets: []string{bigSetID}},
				Dst: calc.Match{Ports: []calc.PortRange{{Min: benchPort, Max: benchPort}}}},
			{Index: 3, Action: calc.ActionAllow, Protocol: &tcp, Src: calc.Match{Sets: []string{bigSetID}},
				Dst: calc.Match{Ports: []calc.PortRange{{Min: benchPort, Max: benchPort}}}},
		}}
	out := []*calc.Chain{in}
	if hasEgress(j, p.Policies/p.PerEndpoint) {
		out = append(out, &calc.Chain{ID: chainID(calc.KindPolicy, policyName(j), calc.Egress), Kind: calc.KindPolicy,
			Name: policyName(j), Dir: calc.Egress, Rules: []calc.Rule{
				{Index: 0, Action: calc.ActionDeny, Protocol: &tcp, Dst: calc.Match{Ports: []calc.PortRange{{Min: 25, Max: 25}}}},
				{Index: 1, Action: calc.ActionAllow, Dst: calc.Match{NotSets: []string{netsSetID}}},
			}})
	}
	return out
}

// endpoint is local endpoint i: group i%groups, selected by the policies
// j with j%groups == i%groups (in order of j), those that hasEgress also
// for egress.
func endpoint(i, groups, policies int) *calc.Endpoint {
	name := fmt.Sprintf("bench-wep-%05d", i)
	ep := &calc.Endpoint{Name: name, IfName: ifName(i),
		Addrs:   []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte((i + 2) >> 8), byte(i + 2)})},
		Labels:  map[string]string{"app": fmt.Sprintf("a%d", i%groups)},
		Ingress: calc.Tier{Profiles: []string{chainID(calc.KindProfile, profileID, calc.Ingress)}},
		Egress:  calc.Tier{Profiles: []string{chainID(calc.KindProfile, profileID, calc.Egress)}},
	}
	for j := i % groups; j < policies; j += groups {
		ep.Ingress.Policies = append(ep.Ingress.Policies, chainID(calc.KindPolicy, policyName(j), calc.Ingress))
		if hasEgress(j, groups) {
			ep.Egress.Policies = append(ep.Egress.Policies, chainID(calc.KindPolicy, policyName(j), calc.Egress))
		}
	}
	return ep
}

// ifName is endpoint i's host interface: "calyx" and 10 hex digits.
func ifName(i int) string { return fmt.Sprintf("calyx%010x", i) }

func addrSet(id, describe string, m map[netip.Addr]bool) *calc.Set {
	s := &calc.Set{ID: id, Kind: calc.AddrSet, Describe: describe}
	for a := range m {
		s.Prefixes = append(s.Prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	slices.SortFunc(s.Prefixes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return s
}
