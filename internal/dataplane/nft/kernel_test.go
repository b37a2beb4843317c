package nft

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
)

// TestKernelPolicies programs a series of States into a real kernel and
// checks each with packets (calico-design.md §6.2 semantics).
func TestKernelPolicies(t *testing.T) {
	tp := newTopo(t)
	r := New(tp.k, Options{})
	profAll := []*calc.Chain{allowAll(calc.Ingress), allowAll(calc.Egress)}
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
			map[string]bool{"c1->c2:80": false, "c1->c2:icmp": false, "c1->host:80": false, "host->c2:80": true}},
		{"profiles allow", withProfiles(nil, map[int]calc.Tier{}, map[int]calc.Tier{}),
			map[string]bool{"c1->c2:80": true, "c3->c1:8080": true, "c1->c2:icmp": true, "c1->host:80": true}},
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
			withProfiles([]*calc.Chain{pol("not-c1", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Src: calc.Match{Not: &calc.NotMatch{Sets: []string{"c1"}}}})},
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
	s := policyState([]*calc.Chain{allowAll(calc.Ingress), allowAll(calc.Egress)}, in, out)
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
		t.Errorf("resync of an unchanged table ran %d transactions, the last: %v", k2.runs, opKinds(k2.last))
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
	last []Op
}

func (k *countingKernel) Run(ctx context.Context, table string, ops []Op) error {
	k.runs++
	k.last = ops
	return k.Kernel.Run(ctx, table, ops)
}

// TestKernelResyncRepairsDrift: someone deletes a set element and flushes
// a chain; Resync puts them back, and the table matches the Fake's
// rendering of the same State.
func TestKernelResyncRepairsDrift(t *testing.T) {
	tp := newTopo(t)
	r := New(tp.k, Options{})
	allow := pol("p", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Src: calc.Match{Sets: []string{"c1"}}})
	s := policyState([]*calc.Chain{allow, allowAll(calc.Egress)},
		map[int]calc.Tier{2: {Policies: []string{allow.ID}}},
		map[int]calc.Tier{1: {Profiles: []string{"profile/all/egress"}}, 3: {Profiles: []string{"profile/all/egress"}}})
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true})
	ctx := context.Background()
	if !r.Unchanged(ctx) {
		t.Fatal("Unchanged = false right after a resync")
	}
	// Another table's change is a change too: the generation is the
	// whole ruleset's.
	tp.nft(t, "add", "table", "inet", "other")
	if r.Unchanged(ctx) {
		t.Fatal("Unchanged = true after another table was added")
	}
	tp.program(t, r, s)
	if !r.Unchanged(ctx) {
		t.Fatal("Unchanged = false after a resync")
	}
	tp.nft(t, "delete", "element", "inet", "calyx", "set4-c1", "{ 10.65.0.1 }")
	tp.expect(t, map[string]bool{"c1->c2:80": false})
	// A periodic resync asks Unchanged first: the deleted element makes
	// it false, so the resync compares the table and repairs it.
	if r.Unchanged(ctx) {
		t.Fatal("Unchanged = true after an element was deleted with nft")
	}
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true})
	tp.nft(t, "flush", "chain", "inet", "calyx", "policy-in-p")
	tp.expect(t, map[string]bool{"c1->c2:80": false}) // end of tier
	tp.program(t, r, s)
	tp.expect(t, map[string]bool{"c1->c2:80": true, "c3->c2:80": false})
	// Someone deletes the whole table: the next Apply fails, names what
	// it did and keeps its memory; the Apply after it reads the kernel
	// back and rebuilds the table.
	tp.nft(t, "delete", "table", "inet", "calyx")
	s2 := clone(s)
	s2.Chains[allow.ID] = pol("p", calc.Ingress, calc.Rule{Action: calc.ActionAllow})
	err := r.Apply(context.Background(), s2, calc.Delta{Chains: []string{allow.ID}})
	if err == nil || !strings.Contains(err.Error(), "applying 1 changed objects (1 flush chain, 1 add rule) to table inet calyx") {
		t.Fatalf("Apply on a deleted table = %v, want an error naming the change", err)
	}
	if err := r.Apply(context.Background(), s2, calc.Delta{Chains: []string{allow.ID}}); err != nil {
		t.Fatalf("retried Apply: %v", err)
	}
	tp.expect(t, map[string]bool{"c1->c2:80": true, "c3->c2:80": true})
	listing := tp.nft(t, "list", "table", "inet", "calyx")
	for _, want := range []string{"chain policy-in-p {", `comment "policy p rule 0`, "set set4-c1 {", "10.65.0.1", `oifname vmap @wl-in`, `"calyx0000000001" : goto tier-`} {
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
	s := policyState([]*calc.Chain{allowAll(calc.Ingress), allowAll(calc.Egress)}, in, out)
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
	// Locally originated: the host connecting to its own address.
	c, greet, err = conn(tp.host, "192.168.50.1:18080")
	if err != nil {
		t.Fatalf("host to its own port mapping: %v", err)
	}
	_ = c.Close()
	if !strings.HasPrefix(greet, "ctr2 ") {
		t.Errorf("host to its own port mapping reached %q, want ctr2", greet)
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

// TestKernelHostEndpoint: a host endpoint's ingress policy denies what it
// does not allow, except the failsafe ports, which no policy closes.
func TestKernelHostEndpoint(t *testing.T) {
	tp := newTopo(t)
	in, out := profiles(map[int]calc.Tier{}, map[int]calc.Tier{})
	s := policyState([]*calc.Chain{allowAll(calc.Ingress), allowAll(calc.Egress),
		pol("host-8080", calc.Ingress, calc.Rule{Action: calc.ActionAllow, Protocol: u8(6), Dst: calc.Match{Ports: []calc.PortRange{{Min: 8080, Max: 8080}}}}),
		pol("host-out", calc.Egress, calc.Rule{Action: calc.ActionAllow})}, in, out)
	s.Config.FailsafeInbound = []calc.ProtoPort{{Protocol: 6, Port: 9050}}
	s.HostEndpoints["ext0"] = &calc.HostEndpoint{Name: "ext0", IfName: "ext0",
		Ingress: calc.Tier{Policies: []string{"policy/host-8080/ingress"}},
		Egress:  calc.Tier{Policies: []string{"policy/host-out/egress"}}}
	tp.program(t, New(tp.k, Options{}), s)
	tp.expect(t, map[string]bool{"out->host:80": false, "out->host:8080": true, "out->host:9050": true, "c1->host:80": true})
}

// TestKernelSetChanges makes random changes to an address set (ranges
// that merge, split and grow, IPv4 and IPv6) and checks after each that
// the kernel took the element ops and holds what a resync wants.
func TestKernelSetChanges(t *testing.T) {
	k := benchKernel(t)
	r := New(k, Options{})
	s := baseState()
	tp := &topo{k: k}
	tp.program(t, r, s)
	rng := rand.New(rand.NewPCG(3, 4))
	pool := []string{"10.65.0.1/32", "10.65.0.2/32", "10.65.0.3/32", "10.65.0.4/31", "10.65.0.0/29", "10.65.0.8/32", "10.65.1.0/24", "0.0.0.0/0", "255.255.255.255/32", "fd00::1/128", "fd00::2/127", "fd00::/64", "::/0"}
	var prev []netip.Prefix
	for i := range 40 {
		var ps []netip.Prefix
		for _, p := range pool {
			if rng.IntN(3) == 0 {
				ps = append(ps, netip.MustParsePrefix(p))
			}
		}
		slices.SortFunc(ps, comparePrefixes)
		s = clone(s)
		s.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: ps, Describe: s.Sets["backend"].Describe}
		if err := r.Apply(context.Background(), s, calc.Delta{Sets: []string{"backend"}}); err != nil {
			t.Fatalf("step %d, %v: %v\nbefore: %v", i, ps, err, prev)
		}
		ck := &countingKernel{Kernel: k}
		if err := New(ck, Options{}).Resync(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		prev = ps
		if ck.runs != 0 {
			t.Fatalf("step %d, %v: the kernel differs from the State: resync wrote %v", i, ps, opKinds(ck.last))
		}
	}
}

// TestKernelIPv6: the IPv6 variants of rules (address sets, named ports)
// and the ICMPv6 neighbour discovery workloads need towards the host.
func TestKernelIPv6(t *testing.T) {
	tp := newTopo(t)
	inNS(t, tp.host, "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
	for i, c := range tp.ctrs {
		ifName := fmt.Sprintf("calyx%010x", i+1)
		addr := fmt.Sprintf("fd00:65::%d", i+1)
		ipCmd(t, "-n", nsName(tp.host), "addr", "add", "fe80::1/64", "dev", ifName, "nodad")
		ipCmd(t, "-n", nsName(tp.host), "-6", "route", "add", addr+"/128", "dev", ifName)
		ipCmd(t, "-n", nsName(c), "addr", "add", addr+"/128", "dev", "eth0", "nodad")
		ipCmd(t, "-n", nsName(c), "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	}
	tcp := u8(6)
	chains := []*calc.Chain{
		pol("from-c1", calc.Ingress,
			calc.Rule{Action: calc.ActionAllow, Protocol: tcp, Src: calc.Match{Sets: []string{"c1"}}, Dst: calc.Match{NamedPortSet: "web"}},
			calc.Rule{Action: calc.ActionAllow, Protocol: u8(58), ICMP: &calc.ICMPMatch{Type: 128}}),
		allowAll(calc.Egress),
	}
	s := policyState(chains, map[int]calc.Tier{2: {Policies: []string{"policy/from-c1/ingress"}}},
		map[int]calc.Tier{1: {Profiles: []string{"profile/all/egress"}}, 3: {Profiles: []string{"profile/all/egress"}}})
	for i, name := range []string{"c1", "c2", "c3"} {
		set := *s.Sets[name]
		set.Prefixes = append(slices.Clone(set.Prefixes), netip.MustParsePrefix(fmt.Sprintf("fd00:65::%d/128", i+1)))
		s.Sets[name] = &set
	}
	s.Sets["web"] = &calc.Set{ID: "web", Kind: calc.AddrPortSet, Triples: []calc.AddrPort{
		{Addr: netip.MustParseAddr("10.65.0.2"), Protocol: 6, Port: 8080},
		{Addr: netip.MustParseAddr("fd00:65::2"), Protocol: 6, Port: 8080},
	}}
	tp.program(t, New(tp.k, Options{}), s)
	for spec, want := range map[string]bool{
		"[fd00:65::2]:8080 from c1": true,
		"[fd00:65::2]:80 from c1":   false,
		"[fd00:65::2]:8080 from c3": false,
		"10.65.0.2:8080 from c1":    true,
	} {
		addr, from, _ := strings.Cut(spec, " from ")
		if got := reach(tp.node(from), addr); got != want {
			t.Errorf("%s: reachable = %v, want %v", spec, got, want)
		}
	}
	if !pingOK(tp.ctrs[0], "fd00:65::2") {
		t.Error("ICMPv6 echo allowed by type was dropped")
	}
	if pingOK(tp.ctrs[0], "fd00:65::3") {
		t.Error("ICMPv6 echo to a default-deny workload passed")
	}
}
