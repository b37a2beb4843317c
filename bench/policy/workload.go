package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/calyx-net/calyx/internal/api"
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
	// BigSet is the number of addresses (remote endpoints) the one large
	// selector, role == "client", resolves to.
	BigSet int
	// RoleSets is the number of small selectors (role == "rN") and
	// RoleMembers the remote endpoints each selects.
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

const (
	node       = "bench-host" // the node the local endpoints are on
	remoteNode = "bench-remote"
	profileID  = "default"
	// clientAddr is in the big set: B4's client sends from it.
	clientAddr = "10.128.0.1"
	// Port of the flow B4 measures (iperf3's): every policy's last two
	// ingress rules allow it from the big set, UDP and TCP.
	benchPort = 5201
	bigSel    = `role == "client"`
)

var privateNets = []string{"172.16.0.0/12", "192.168.0.0/16"}

// generate returns the datastore's resources for one host: p.Endpoints
// local workload endpoints, each selected by p.PerEndpoint of p.Policies
// GlobalNetworkPolicies (app == "aN"), whose rules select the big client
// set and small role sets of remote endpoints, and a net list; one
// profile every endpoint has. The same params give the same resources.
func generate(p params) ([]api.Resource, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	allow := []api.Rule{{Action: api.ActionAllow}}
	rs := []api.Resource{&api.Profile{TypeMeta: typeMeta(api.KindProfile), Metadata: api.ObjectMeta{Name: profileID},
		Spec: api.ProfileSpec{Ingress: allow, Egress: allow}}}
	// The big set: the client address plus distinct random addresses in
	// 10.128.0.0/9.
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr, role string) {
		seen[a] = true
		rs = append(rs, remoteEndpoint(len(seen), a, role))
	}
	add(netip.MustParseAddr(clientAddr), "client")
	for len(seen) < p.BigSet {
		if a := netip.AddrFrom4([4]byte{10, 128 | byte(rng.IntN(128)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))}); !seen[a] {
			add(a, "client")
		}
	}
	for i := range p.RoleSets {
		for n := 0; n < p.RoleMembers; {
			if a := netip.AddrFrom4([4]byte{10, 64 + byte(i%64), byte(rng.IntN(256)), byte(1 + rng.IntN(254))}); !seen[a] {
				add(a, fmt.Sprintf("r%d", i))
				n++
			}
		}
	}
	groups := p.Policies / p.PerEndpoint
	for j := range p.Policies {
		port := uint16(1024 + rng.IntN(7000))
		rs = append(rs, policy(j, groups, fmt.Sprintf(`role == "r%d"`, rng.IntN(p.RoleSets)), port))
	}
	for i := range p.Endpoints {
		rs = append(rs, localEndpoint(i, groups))
	}
	return rs, nil
}

func typeMeta(kind string) api.TypeMeta { return api.TypeMeta{Kind: kind, APIVersion: "calyx.dev/v1"} }

// policyName is policy j's name; names sort in order of j.
func policyName(j int) string { return fmt.Sprintf("p%05d", j) }

// hasEgress reports whether policy j has egress rules: every other
// policy of each group (the first, third, ...).
func hasEgress(j, groups int) bool { return (j/groups)%2 == 0 }

// policy is policy j: it selects group j%groups; ingress: TCP from the
// role selector to port and 8000-8100, deny UDP 53 from the private nets,
// UDP and TCP from the big set to benchPort; egress (if hasEgress): deny
// TCP 25, allow anything not to the private nets.
func policy(j, groups int, roleSel string, port uint16) *api.GlobalNetworkPolicy {
	tcp, udp := api.ProtocolFromString("TCP"), api.ProtocolFromString("UDP")
	order := float64(j)
	g := &api.GlobalNetworkPolicy{TypeMeta: typeMeta(api.KindGlobalNetworkPolicy), Metadata: api.ObjectMeta{Name: policyName(j)},
		Spec: api.GlobalNetworkPolicySpec{Order: &order, Selector: fmt.Sprintf(`app == "a%d"`, j%groups),
			Types: []string{api.PolicyTypeIngress},
			Ingress: []api.Rule{
				{Action: api.ActionAllow, Protocol: &tcp, Source: api.EntityRule{Selector: roleSel},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(port), {MinPort: 8000, MaxPort: 8100}}}},
				{Action: api.ActionDeny, Protocol: &udp, Source: api.EntityRule{Nets: privateNets},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(53)}}},
				{Action: api.ActionAllow, Protocol: &udp, Source: api.EntityRule{Selector: bigSel},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(benchPort)}}},
				{Action: api.ActionAllow, Protocol: &tcp, Source: api.EntityRule{Selector: bigSel},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(benchPort)}}},
			}}}
	if hasEgress(j, groups) {
		g.Spec.Types = append(g.Spec.Types, api.PolicyTypeEgress)
		g.Spec.Egress = []api.Rule{
			{Action: api.ActionDeny, Protocol: &tcp, Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(25)}}},
			{Action: api.ActionAllow, Destination: api.EntityRule{NotNets: privateNets}},
		}
	}
	return g
}

// localEndpoint is local endpoint i, in group i%groups, address
// 10.0.x.y (i+2), interface ifName(i).
func localEndpoint(i, groups int) *api.WorkloadEndpoint {
	a := netip.AddrFrom4([4]byte{10, 0, byte((i + 2) >> 8), byte(i + 2)})
	return &api.WorkloadEndpoint{TypeMeta: typeMeta(api.KindWorkloadEndpoint),
		Metadata: api.ObjectMeta{Name: localName(i), Labels: map[string]string{"app": fmt.Sprintf("a%d", i%groups)}},
		Spec: api.WorkloadEndpointSpec{Orchestrator: api.OrchestratorCNI, Node: node, Workload: fmt.Sprintf("w%05d", i),
			ContainerID: fmt.Sprintf("c%05d", i), Endpoint: "eth0", InterfaceName: ifName(i),
			IPNetworks: []string{netip.PrefixFrom(a, 32).String()}, Profiles: []string{profileID}}}
}

func localName(i int) string { return fmt.Sprintf("bench-local-%05d", i) }

// remoteEndpoint is a workload endpoint on another node, n its number.
func remoteEndpoint(n int, a netip.Addr, role string) *api.WorkloadEndpoint {
	return &api.WorkloadEndpoint{TypeMeta: typeMeta(api.KindWorkloadEndpoint),
		Metadata: api.ObjectMeta{Name: fmt.Sprintf("bench-remote-%06d", n), Labels: map[string]string{"role": role}},
		Spec: api.WorkloadEndpointSpec{Orchestrator: api.OrchestratorCNI, Node: remoteNode, Workload: fmt.Sprintf("r%06d", n),
			ContainerID: fmt.Sprintf("r%06d", n), Endpoint: "eth0", InterfaceName: fmt.Sprintf("calyx%010x", 1<<32+n),
			IPNetworks: []string{netip.PrefixFrom(a, 32).String()}, Profiles: []string{profileID}}}
}

// ifName is local endpoint i's host interface: "calyx" and 10 hex digits.
func ifName(i int) string { return fmt.Sprintf("calyx%010x", i) }

// compute loads rs into a new calculator for the benchmark's node.
func compute(rs []api.Resource) *calc.Calc {
	c := calc.New(node)
	c.Replace(rs)
	return c
}
