package nft

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
)

// TestKernelPolicies programs a series of States into a real kernel and
// checks each with packets (calico-design.md §6.2 semantics).
func TestKernelPolicies(t *testing.T) {
	tp := newTopo(t)
	r := New(tp.k, Options{})
	profAll := []*calc.Chain{allowAll(calc.KindProfile, "all", calc.Ingress), allowAll(calc.KindProfile, "all", calc.Egress)}
	withProfiles := func(extra []*calc.Chain, in, out map[int]calc.Tier) *calc.State {
		in, out = profiles(in, out)
		return policyState(append(extra, profAll...), in, out)
	}
	tcp := u8(6)
	for _, tc := range []struct {
		name string
		s    *calc.State
		want map[string]bool
	}{
		{"default deny", policyState(nil, map[int]calc.Tier{}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": false, "c1->c2:icmp": false}},
		{"profiles allow", withProfiles(nil, map[int]calc.Tier{}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": true, "c3->c1:8080": true, "c1->c2:icmp": true}},
		{"allow by selector set, end of tier",
			withProfiles([]*calc.Chain{pol("allow-c1", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: tcp, Src: calc.Match{Sets: []string{"c1"}}, Dst: calc.Match{Ports: []calc.PortRange{{Min: 80, Max: 80}}}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/allow-c1/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": true, "c3->c2:80": false, "c1->c2:8080": false, "c3->c1:80": true}},
		{"deny by higher-order policy",
			withProfiles([]*calc.Chain{
				pol("deny-c1", calc.Ingress, calc.Rule{Action: calc.ActionDeny, Src: calc.Match{Sets: []string{"c1"}}}),
				pol("allow-all", calc.Ingress, calc.Rule{Action: calc.ActionAllow})},
				map[int]calc.Tier{2: {Policies: []string{"policy/deny-c1/ingress", "policy/allow-all/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": false, "c3->c2:80": true}},
		{"pass to profile",
			withProfiles([]*calc.Chain{
				pol("pass-c1", calc.Ingress, calc.Rule{Action: calc.ActionPass, Src: calc.Match{Sets: []string{"c1"}}}),
				pol("deny-all", calc.Ingress, calc.Rule{Action: calc.ActionDeny})},
				map[int]calc.Tier{2: {Policies: []string{"policy/pass-c1/ingress", "policy/deny-all/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": true, "c3->c2:80": false}},
		{"egress rule",
			withProfiles([]*calc.Chain{pol("egress-8080", calc.Egress, calc.Rule{Action: calc.ActionAllow, Protocol: tcp, Dst: calc.Match{Ports: []calc.PortRange{{Min: 8080, Max: 8080}}}})},
				map[int]calc.Tier{}, map[int]calc.Tier{1: {Policies: []string{"policy/egress-8080/egress"}}}),
			map[string]bool{"c1->c2:80": false, "c1->c2:8080": true, "c2->c1:80": true}},
		{"icmp type",
			withProfiles([]*calc.Chain{pol("echo-only", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: u8(1), ICMP: &calc.ICMPMatch{Type: 8}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/echo-only/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:icmp": true, "c1->c2:80": false}},
		{"icmp other type",
			withProfiles([]*calc.Chain{pol("timestamp-only", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: u8(1), ICMP: &calc.ICMPMatch{Type: 13}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/timestamp-only/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:icmp": false}},
		{"port range",
			withProfiles([]*calc.Chain{pol("range", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: tcp, Dst: calc.Match{Ports: []calc.PortRange{{Min: 8000, Max: 8100}}}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/range/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:8080": true, "c1->c2:80": false, "c1->c2:9050": false}},
		{"named port set", func() *calc.State {
			s := withProfiles([]*calc.Chain{pol("named", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: tcp, Dst: calc.Match{NamedPortSet: "metrics"}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/named/ingress"}}}, map[int]calc.Tier{})
			s.Sets["metrics"] = &calc.Set{ID: "metrics", Kind: calc.AddrPortSet, Triples: []calc.AddrPort{{Addr: netip.MustParseAddr("10.65.0.2"), Protocol: 6, Port: 9050}}}
			return s
		}(), map[string]bool{"c1->c2:9050": true, "c1->c2:80": false}},
		{"notNets",
			withProfiles([]*calc.Chain{pol("not-c1", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Src: calc.Match{NotSets: []string{"c1"}}})},
				map[int]calc.Tier{2: {Policies: []string{"policy/not-c1/ingress"}}}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": false, "c3->c2:80": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp.program(t, r, tc.s)
			tp.expect(t, tc.want)
		})
	}
}

// TestKernelUnknownInterface: a calyx* interface in no map is dropped.
func TestKernelUnknownInterface(t *testing.T) {
	tp := newTopo(t)
	c4 := newExtraContainer(t, tp)
	in, out := profiles(map[int]calc.Tier{}, map[int]calc.Tier{})
	s := policyState([]*calc.Chain{allowAll(calc.KindProfile, "all", calc.Ingress), allowAll(calc.KindProfile, "all", calc.Egress)}, in, out)
	tp.program(t, New(tp.k, Options{}), s)
	tp.expect(t, map[string]bool{"c1->c2:80": true})
	if reach(c4, "10.65.0.2:80") {
		t.Error("an unknown calyx interface reached a workload")
	}
	if reach(tp.ctrs[1], "10.65.0.4:80") {
		t.Error("a workload reached an unknown calyx interface")
	}
}

// TestKernelPolicyEditKeepsFlows: a policy edit leaves an open connection
// open (established) while new connections are refused; a restarted
// reconciler adopts the table without writing and without dropping it.
func TestKernelPolicyEditKeepsFlows(t *testing.T) {
	tp := newTopo(t)
	k := &countingKernel{Kernel: tp.k}
	r := New(k, Options{})
	allow := pol("p", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Src: calc.Match{Sets: []string{"c1"}}})
	s := policyState([]*calc.Chain{allow}, map[int]calc.Tier{2: {Policies: []string{allow.ID}}}, map[int]calc.Tier{1: {Policies: []string{"policy/out/egress"}}})
	s.Chains["policy/out/egress"] = pol("out", calc.Egress, calc.Rule{Action: calc.ActionAllow})
	tp.program(t, r, s)
	c, greet, err := conn(tp.ctrs[0], "10.65.0.2:80")
	if err != nil {
		t.Fatalf("allowed connection: %v", err)
	}
	defer func() { _ = c.Close() }()
	if greet != "ctr2 10.65.0.1" {
		t.Errorf("greeting %q", greet)
	}
	deny := pol("p", calc.Ingress, calc.Rule{Action: calc.ActionDeny})
	s2 := clone(s)
	s2.Chains[deny.ID] = deny
	if err := r.Apply(context.Background(), s2, calc.Delta{Chains: []string{deny.ID}}); err != nil {
		t.Fatal(err)
	}
	if reach(tp.ctrs[0], "10.65.0.2:80") {
		t.Error("a new connection opened after the policy denied it")
	}
	echo(t, c, "still here")

	// Restart: a new Reconciler adopts the table; nothing is written.
	k2 := &countingKernel{Kernel: tp.k}
	r2 := New(k2, Options{})
	tp.program(t, r2, s2)
	tp.program(t, r2, s2)
	if k2.runs != 0 {
		t.Errorf("resync of an unchanged table ran %d transactions", k2.runs)
	}
	echo(t, c, "after restart")
}

func echo(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, msg string,
) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		t.Fatalf("writing on the open connection: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != msg {
		t.Fatalf("open connection: read %q, %v; want the echo of %q", line, err, msg)
	}
}

type countingKernel struct {
	Kernel
	runs int
}

func (k *countingKernel) Run(ctx context.Context, table string, ops []Op) error {
	k.runs++
	return k.Kernel.Run(ctx, table, ops)
}

// TestKernelResyncRepairsDrift: someone deletes a set element and flushes
// a chain; Resync puts them back, and the table matches the Fake's
// rendering of the same State.
func TestKernelResyncRepairsDrift(t *testing.T) {
	tp := newTopo(t)
	r := New(tp.k, Options{})
	allow := pol("p", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Src: calc.Match{Sets: []string{"c1"}}})
	s := policyState([]*calc.Chain{allow, allowAll(calc.KindProfile, "all", calc.Egress)},
		map[int]calc.Tier{2: {Policies: []string{allow.ID}}},
		map[int]calc.Tier{1: {Profiles: []string{"profile/all/egress"}}, 3: {Profiles: []string{"profile/all/egress"}}})
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true})
	tp.nft(t, "delete", "element", "inet", "calyx", "set4-c1", "{ 10.65.0.1 }")
	tp.expect(t, map[string]bool{"c1->c2:80": false})
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true})
	tp.nft(t, "flush", "chain", "inet", "calyx", "wl-out-calyx0000000001")
	tp.expect(t, map[string]bool{"c1->c2:80": false}) // the empty chain returns without the accept mark... and the dispatch drops
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true, "c3->c2:80": false})
	listing := tp.nft(t, "list", "table", "inet", "calyx")
	for _, want := range []string{"chain policy-in-p {", `comment "policy p rule 0`, "set set4-c1 {", "10.65.0.1", `oifname vmap @wl-in`} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft list lacks %q:\n%s", want, listing)
		}
	}
}

// TestKernelLargeSet loads 10,000 intervals (in messages of 1,000) and
// then changes one member.
func TestKernelLargeSet(t *testing.T) {
	tp := newTopo(t)
	k := &countingKernel{Kernel: tp.k}
	r := New(k, Options{})
	s := bigState(3, 10000)
	tp.program(t, r, s)
	l, err := tp.k.List(context.Background(), DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(l.Sets["set4-big"]); n != 20000 {
		t.Errorf("set4-big holds %d elements, want 20000 (10,000 intervals)", n)
	}
	s2 := clone(s)
	big := *s.Sets["big"]
	big.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}, big.Prefixes...)
	s2.Sets["big"] = &big
	if err := r.Apply(context.Background(), s2, calc.Delta{Sets: []string{"big"}}); err != nil {
		t.Fatal(err)
	}
	if k.runs != 2 {
		t.Errorf("%d transactions, want 2", k.runs)
	}
}

// TestKernelNAT: natOutgoing masquerades traffic leaving the pools; a
// port mapping DNATs the host's address to the container, subject to
// its ingress policy.
func TestKernelNAT(t *testing.T) {
	tp := newTopo(t)
	r := New(tp.k, Options{})
	in, out := profiles(map[int]calc.Tier{}, map[int]calc.Tier{})
	s := policyState([]*calc.Chain{allowAll(calc.KindProfile, "all", calc.Ingress), allowAll(calc.KindProfile, "all", calc.Egress)}, in, out)
	ep := *s.Endpoints["c2"]
	ep.PortMappings = []calc.PortMapping{{Protocol: 6, HostPort: 18080, ContainerPort: 80, Addr: netip.MustParseAddr("10.65.0.2")}}
	s.Endpoints["c2"] = &ep
	tp.program(t, r, s)
	c, greet, err := conn(tp.ctrs[0], "192.168.50.2:80")
	if err != nil {
		t.Fatalf("container to outside: %v", err)
	}
	_ = c.Close()
	if greet != "outside 192.168.50.1" {
		t.Errorf("the outside saw %q, want the host's address (masquerade)", greet)
	}
	c, greet, err = conn(tp.outside, "192.168.50.1:18080")
	if err != nil {
		t.Fatalf("outside to the port mapping: %v", err)
	}
	_ = c.Close()
	if greet != "ctr2 192.168.50.2" {
		t.Errorf("port mapping reached %q, want ctr2 seeing the outside's address", greet)
	}
	// Within the pool: no masquerade.
	if _, greet, err := conn(tp.ctrs[0], "10.65.0.3:80"); err != nil || greet != "ctr3 10.65.0.1" {
		t.Errorf("pool to pool: %q, %v", greet, err)
	}
	// The mapping is subject to the container's ingress policy.
	s2 := clone(s)
	ep2 := ep
	ep2.Ingress = calc.Tier{}
	s2.Endpoints["c2"] = &ep2
	if err := r.Apply(context.Background(), s2, calc.Delta{Endpoints: []string{"c2"}}); err != nil {
		t.Fatal(err)
	}
	if reach(tp.outside, "192.168.50.1:18080") {
		t.Error("the port mapping bypassed the container's ingress policy")
	}
}
