package api

import (
	"errors"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// validateCase is one row of a validation table: the resource (built from
// a valid base and a mutation), and the path and message fragment of the
// expected error, or an empty path when the resource must be valid.
type validateCase struct {
	name string
	r    Resource
	path string
	msg  string
}

// runValidateCases applies SetDefaults then Validate to each row, as
// Decode does, and checks the error.
func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.SetDefaults()
			checkFieldError(t, tc.r.Validate(), tc.path, tc.msg)
		})
	}
}

// checkFieldError asserts that err is nil (path "") or a *ValidationError
// with a field at path whose message contains msg.
func checkFieldError(t *testing.T, err error, path, msg string) {
	t.Helper()
	if path == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	ve, ok := errors.AsType[*ValidationError](err)
	if !ok {
		t.Fatalf("want a *ValidationError at %s, got %v", path, err)
	}
	for _, f := range ve.Fields {
		if f.Path == path && strings.Contains(f.Msg, msg) {
			return
		}
	}
	t.Fatalf("want an error at %s containing %q, got: %v", path, msg, err)
}

func testPool(mut func(*IPPool)) *IPPool {
	p := &IPPool{Metadata: ObjectMeta{Name: "pool-a"}, Spec: IPPoolSpec{CIDR: "10.0.0.0/16"}}
	if mut != nil {
		mut(p)
	}
	return p
}

func testPool6(mut func(*IPPool)) *IPPool {
	return testPool(func(p *IPPool) {
		p.Spec.CIDR = "fd00:10::/48"
		if mut != nil {
			mut(p)
		}
	})
}

func testIPAMConfig(mut func(*IPAMConfiguration)) *IPAMConfiguration {
	c := &IPAMConfiguration{Metadata: ObjectMeta{Name: "default"}}
	if mut != nil {
		mut(c)
	}
	return c
}

func testNode(mut func(*Node)) *Node {
	n := &Node{Metadata: ObjectMeta{Name: "host-1"}, Spec: NodeSpec{BGP: &NodeBGPSpec{IPv4Address: "10.0.0.1/24"}}}
	if mut != nil {
		mut(n)
	}
	return n
}

func testProfile(mut func(*Profile)) *Profile {
	p := &Profile{Metadata: ObjectMeta{Name: "net-a"}, Spec: ProfileSpec{
		Ingress: []Rule{{Action: ActionAllow, Source: EntityRule{Selector: "has(calyx.dev/net-a)"}}},
		Egress:  []Rule{{Action: ActionAllow}},
	}}
	if mut != nil {
		mut(p)
	}
	return p
}

// testGNP is a policy with one ingress TCP rule; mutate rule or spec.
func testGNP(mut func(*GlobalNetworkPolicy)) *GlobalNetworkPolicy {
	g := &GlobalNetworkPolicy{Metadata: ObjectMeta{Name: "allow-web"}, Spec: GlobalNetworkPolicySpec{
		Selector: "role == 'web'",
		Ingress: []Rule{{
			Action:      ActionAllow,
			Protocol:    &Protocol{Name: ProtocolTCP},
			Destination: EntityRule{Ports: []Port{SinglePort(80)}},
		}},
	}}
	if mut != nil {
		mut(g)
	}
	return g
}

// testRule is testGNP with its one rule mutated.
func testRule(mut func(*Rule)) *GlobalNetworkPolicy {
	return testGNP(func(g *GlobalNetworkPolicy) { mut(&g.Spec.Ingress[0]) })
}

func testGNS(mut func(*GlobalNetworkSet)) *GlobalNetworkSet {
	g := &GlobalNetworkSet{Metadata: ObjectMeta{Name: "external", Labels: map[string]string{"role": "external"}},
		Spec: GlobalNetworkSetSpec{Nets: []string{"198.51.100.0/28"}}}
	if mut != nil {
		mut(g)
	}
	return g
}

func testWEP(mut func(*WorkloadEndpoint)) *WorkloadEndpoint {
	w := &WorkloadEndpoint{
		Metadata: ObjectMeta{Name: "host-1-mesos-task-1-eth0", Labels: map[string]string{"app": "web"}},
		Spec: WorkloadEndpointSpec{
			Orchestrator: OrchestratorMesos, Workload: "task-1", Node: "host-1", Endpoint: "eth0",
			InterfaceName: "calyx0123456789", MAC: "ee:ee:ee:ee:ee:ee",
			IPNetworks:  []string{"10.0.0.5/32", "fd00::5/128"},
			IPv4Gateway: "169.254.1.1", Profiles: []string{"net-a"},
		},
	}
	if mut != nil {
		mut(w)
	}
	return w
}

func testHEP(mut func(*HostEndpoint)) *HostEndpoint {
	h := &HostEndpoint{Metadata: ObjectMeta{Name: "host-1-eth0"}, Spec: HostEndpointSpec{
		Node: "host-1", InterfaceName: "eth0", ExpectedIPs: []string{"192.168.0.1"},
	}}
	if mut != nil {
		mut(h)
	}
	return h
}

func testPeer(mut func(*BGPPeer)) *BGPPeer {
	b := &BGPPeer{Metadata: ObjectMeta{Name: "tor"}, Spec: BGPPeerSpec{PeerIP: "192.168.1.1", ASNumber: 64600}}
	if mut != nil {
		mut(b)
	}
	return b
}

func testBGPConfig(mut func(*BGPConfiguration)) *BGPConfiguration {
	b := &BGPConfiguration{Metadata: ObjectMeta{Name: "default"}}
	if mut != nil {
		mut(b)
	}
	return b
}

func testNodeConfig(mut func(*NodeConfiguration)) *NodeConfiguration {
	n := &NodeConfiguration{Metadata: ObjectMeta{Name: "default"}}
	if mut != nil {
		mut(n)
	}
	return n
}
