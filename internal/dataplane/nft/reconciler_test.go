package nft

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s: table differs from the golden file (-want +got):\n%s", name, diff)
	}
}

func mustApply(t *testing.T, r *Reconciler, s *calc.State, d calc.Delta) {
	t.Helper()
	if err := r.Apply(context.Background(), s, d); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustResync(t *testing.T, r *Reconciler, s *calc.State) {
	t.Helper()
	if err := r.Resync(context.Background(), s); err != nil {
		t.Fatalf("Resync: %v", err)
	}
}

// TestGolden renders several States through the Fake.
func TestGolden(t *testing.T) {
	empty := &calc.State{}
	hep := clone(baseState())
	hep.HostEndpoints["eth0"] = &calc.HostEndpoint{Name: "host-eth0", IfName: "eth0",
		Ingress: calc.Tier{Policies: []string{chainID("policy", "allow-frontend", "ingress")}}}
	dropToHost := clone(baseState())
	dropToHost.Config = &calc.Config{EndpointToHostAction: "Drop"}
	missing := clone(baseState())
	ep := *missing.Endpoints["frontend"]
	ep.Ingress = calc.Tier{Profiles: []string{"profile/gone/ingress"}}
	missing.Endpoints["frontend"] = &ep
	for _, tc := range []struct {
		name string
		s    *calc.State
	}{
		{"empty", empty},
		{"base", baseState()},
		{"host-endpoint", hep},
		{"drop-to-host", dropToHost},
		{"missing-profile", missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake()
			mustResync(t, New(f, Options{}), tc.s)
			golden(t, tc.name, f.Dump(DefaultTable))
		})
	}
}

func TestMergePrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"10.0.0.0/8", "10.1.0.0/16"}, []string{"10.0.0.0/8"}},
		{[]string{"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"}, []string{"10.0.0.1-10.0.0.3"}},
		{[]string{"10.0.0.0/24", "10.0.1.0/24"}, []string{"10.0.0.0/23"}},
		{[]string{"0.0.0.0/0", "10.0.0.0/8"}, []string{"0.0.0.0/0"}},
		{[]string{"255.255.255.255/32", "1.2.3.4/32"}, []string{"1.2.3.4", "255.255.255.255"}},
		{[]string{"fd00::/64", "fd00::1/128", "fd01::/64"}, []string{"fd00::/64", "fd01::/64"}},
	} {
		got := renderElems(map[bool]SetType{false: SetAddr4, true: SetAddr6}[strings.Contains(tc.in[0], ":")], intervalElems(mergePrefixes(pfx(tc.in...))))
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%v: (-want +got)\n%s", tc.in, diff)
		}
	}
}

func opKinds(ops []Op) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

// TestDeltaOneSetMember: a one-member change of a set is one element op.
func TestDeltaOneSetMember(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	s2 := clone(s)
	s2.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: pfx("10.65.0.3/32", "10.65.0.9/32"), Describe: s.Sets["backend"].Describe}
	mustApply(t, r, s2, calc.Delta{Sets: []string{"backend"}})
	if diff := cmp.Diff([]string{"add elements set4-backend (2)"}, opKinds(f.Last)); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	s3 := clone(s2)
	s3.Sets["backend"] = s.Sets["backend"]
	mustApply(t, r, s3, calc.Delta{Sets: []string{"backend"}})
	if diff := cmp.Diff([]string{"delete elements set4-backend (2)"}, opKinds(f.Last)); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	assertConsistent(t, f, s3)
}

// assertConsistent checks that a fresh Reconciler's Resync of s finds
// nothing to do: incremental Applies left what a full render wants.
func assertConsistent(t *testing.T, f *Fake, s *calc.State) {
	t.Helper()
	before := f.Transactions
	mustResync(t, New(f, Options{}), s)
	if f.Transactions != before {
		t.Errorf("a fresh Resync after the Applies wrote %v", opKinds(f.Last))
	}
}

// TestDeltaPolicyEdit: editing a policy replaces that one chain.
func TestDeltaPolicyEdit(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	id, s2 := withoutFirstRule(s, "egress-dns", "egress")
	mustApply(t, r, s2, calc.Delta{Chains: []string{id}})
	got := opKinds(f.Last)
	if len(got) != 3 || got[0] != "flush chain policy-out-egress-dns" || !strings.HasPrefix(got[1], "add rule policy-out-egress-dns ") || !strings.HasPrefix(got[2], "add rule policy-out-egress-dns ") {
		t.Errorf("ops = %q, want a flush of policy-out-egress-dns and its two rules", got)
	}
	assertConsistent(t, f, s2)
}

// withoutFirstRule returns the ID of policy name's chain in dir and a copy
// of s whose chain lacks its first rule.
func withoutFirstRule(s *calc.State, name, dir string) (string, *calc.State) {
	id := chainID("policy", name, dir)
	c := *s.Chains[id]
	c.Rules = c.Rules[1:]
	s2 := clone(s)
	s2.Chains[id] = &c
	return id, s2
}

// TestDeltaEndpointLifecycle adds and removes an endpoint: its chains
// are created before the map elements that goto them, and deleted after.
func TestDeltaEndpointLifecycle(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	s2 := clone(s)
	s2.Endpoints["new"] = &calc.Endpoint{Name: "new", IfName: "calyx00000000ff", Addrs: []netip.Addr{netip.MustParseAddr("10.65.0.255")},
		Ingress:      calc.Tier{Profiles: []string{chainID("profile", "ns-default", "ingress")}},
		PortMappings: []calc.PortMapping{{Protocol: 17, HostPort: 5353, ContainerPort: 53, Addr: netip.MustParseAddr("10.65.0.255")}}}
	mustApply(t, r, s2, calc.Delta{Endpoints: []string{"new"}})
	dump := f.Dump(DefaultTable)
	for _, want := range []string{`"calyx00000000ff" : goto tier-in-`, `"calyx00000000ff" : goto tier-out-`, "udp . 5353 : 10.65.0.255 . 53"} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	assertConsistent(t, f, s2)
	mustApply(t, r, s, calc.Delta{Endpoints: []string{"new"}})
	if diff := cmp.Diff(dumpOf(t, s), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("after removing the endpoint (-want +got):\n%s", diff)
	}
}

func dumpOf(t *testing.T, s *calc.State) string {
	t.Helper()
	f := NewFake()
	mustResync(t, New(f, Options{}), s)
	return f.Dump(DefaultTable)
}

// TestDeltaRemovePolicy removes a policy used by an endpoint: the
// endpoint's chain stops jumping to it before the chain is deleted.
func TestDeltaRemovePolicy(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	id := chainID("policy", "allow-frontend", "ingress")
	s2 := clone(s)
	delete(s2.Chains, id)
	delete(s2.Sets, "http")
	ep := *s2.Endpoints["backend"]
	ep.Ingress = calc.Tier{Profiles: ep.Ingress.Profiles}
	s2.Endpoints["backend"] = &ep
	mustApply(t, r, s2, calc.Delta{Chains: []string{id}, Endpoints: []string{"backend"}, Sets: []string{"http"}})
	if diff := cmp.Diff(dumpOf(t, s2), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestApplyFailureKeepsMemory: a refused transaction changes nothing and
// the next Apply retries it.
func TestApplyFailureKeepsMemory(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	before := f.Dump(DefaultTable)
	s2 := clone(s)
	s2.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: pfx("10.65.0.3/32", "10.65.0.9/32"), Describe: s.Sets["backend"].Describe}
	f.FailNext = errors.New("netlink: no buffer space")
	err := r.Apply(context.Background(), s2, calc.Delta{Sets: []string{"backend"}})
	if err == nil || !strings.Contains(err.Error(), "applying 1 changed objects (1 add elements) to table inet calyx") {
		t.Fatalf("Apply = %v, want an error naming what it applied", err)
	}
	if got := f.Dump(DefaultTable); got != before {
		t.Fatal("a failed transaction changed the table")
	}
	// Meanwhile someone removes a chain: the retry repairs that too.
	f.DeleteChain(DefaultTable, "policy-in-allow-frontend")
	mustApply(t, r, s2, calc.Delta{Sets: []string{"backend"}})
	if diff := cmp.Diff(dumpOf(t, s2), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("retry did not program the change (-want +got):\n%s", diff)
	}
}

// TestResync: an unchanged table writes nothing; drift is repaired;
// a new Reconciler adopts an existing table without flushing anything.
func TestResync(t *testing.T) {
	f := NewFake()
	s := baseState()
	mustResync(t, New(f, Options{}), s)
	want := f.Dump(DefaultTable)
	n := f.Transactions

	r := New(f, Options{}) // a restarted calyx-node
	mustResync(t, r, s)
	mustResync(t, r, s)
	if f.Transactions != n {
		t.Fatalf("resync of an unchanged table ran %d transactions: %v", f.Transactions-n, opKinds(f.Last))
	}

	f.DeleteChain(DefaultTable, "policy-in-allow-frontend")
	f.DeleteElem(DefaultTable, "set4-backend", Elem{Key: []byte{10, 65, 0, 3}})
	mustResync(t, r, s)
	if diff := cmp.Diff(want, f.Dump(DefaultTable)); diff != "" {
		t.Errorf("resync did not repair the drift (-want +got):\n%s", diff)
	}
	for _, o := range f.Last {
		if o.Kind == OpDelChain || o.Kind == OpDelSet || o.Kind == OpFlushChain && !strings.HasPrefix(o.Chain.Name, "tier-in-") {
			t.Errorf("repair did more than needed: %s", o)
		}
	}
}

// TestUnchanged: Unchanged holds after a Resync and across the
// reconciler's own Applies, and not after a change behind its back, until
// a Resync has repaired it; nor before the first Resync or after a failed
// transaction.
func TestUnchanged(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	r := New(f, Options{})
	if r.Unchanged(ctx) {
		t.Fatal("Unchanged before the first Resync")
	}
	s := baseState()
	mustResync(t, r, s)
	if !r.Unchanged(ctx) {
		t.Fatal("not Unchanged after a Resync")
	}
	w := clone(s)
	delete(w.Endpoints, "frontend")
	mustApply(t, r, w, calc.Delta{Endpoints: []string{"frontend"}})
	mustApply(t, r, s, calc.Delta{Endpoints: []string{"frontend"}})
	if !r.Unchanged(ctx) {
		t.Fatal("not Unchanged after the reconciler's own Applies")
	}
	f.DeleteElem(DefaultTable, "set4-backend", Elem{Key: []byte{10, 65, 0, 3}})
	if r.Unchanged(ctx) {
		t.Fatal("Unchanged after an element was deleted behind its back")
	}
	mustResync(t, r, s)
	if !r.Unchanged(ctx) {
		t.Fatal("not Unchanged after the Resync that repaired the drift")
	}
	f.FailNext = errors.New("refused")
	if err := r.Apply(ctx, w, calc.Delta{Endpoints: []string{"frontend"}}); err == nil {
		t.Fatal("Apply with FailNext: no error")
	}
	if r.Unchanged(ctx) {
		t.Fatal("Unchanged after a failed transaction")
	}
}

// TestLargeSetChunked: 10,000 members load in messages of at most 1,000
// elements, in one transaction.
func TestLargeSetChunked(t *testing.T) {
	f := NewFake()
	s := bigState(2, 10000)
	mustResync(t, New(f, Options{}), s)
	if f.Transactions != 1 {
		t.Fatalf("%d transactions, want 1", f.Transactions)
	}
	var msgs, elems int
	for _, o := range f.Last {
		if o.Kind == OpAddElems && o.Set.Name == "set4-big" {
			msgs++
			elems += len(o.Elems)
		}
	}
	if elems != 20000 || msgs != 20 {
		t.Errorf("set4-big loaded %d elements in %d ops, want 20000 in 20", elems, msgs)
	}
}

// TestLargeMapChunked: a thousand endpoints' verdict map elements do not
// fit one netlink attribute (16-bit length) and are split further.
func TestLargeMapChunked(t *testing.T) {
	f := NewFake()
	mustResync(t, New(f, Options{}), bigState(1000, 10))
	n := 0
	for _, o := range f.Last {
		if o.Kind == OpAddElems && o.Set.Name == "wl-in" {
			n += len(o.Elems)
		}
	}
	if n != 1000 {
		t.Errorf("wl-in got %d elements, want 1000", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{MarkAccept: 3}).Validate(); err == nil || !strings.Contains(err.Error(), "MarkAccept 0x00000003: expected a single bit") {
		t.Errorf("Validate = %v", err)
	}
	if err := (Options{MarkAccept: 1 << 24, MarkPass: 1 << 24}).Validate(); err == nil {
		t.Error("Validate accepted equal marks")
	}
}

func TestKernelName(t *testing.T) {
	long := strings.Repeat("a", 100)
	got := kernelName("policy-in-", long)
	if len(got) > maxNameLen || !strings.HasPrefix(got, "policy-in-aaa") {
		t.Errorf("kernelName(long) = %q (%d)", got, len(got))
	}
	if kernelName("policy-in-", long) == kernelName("policy-in-", long+"b") {
		t.Error("two long names collide")
	}
	if got := kernelName("p-", `a"b`); strings.Contains(got, `"`) {
		t.Errorf("kernelName kept a quote: %q", got)
	}
}

// TestDeltaConfig: a Config change re-renders the host-wide chains and
// the host endpoints' failsafe rules.
func TestDeltaConfig(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := clone(baseState())
	s.HostEndpoints["eth0"] = &calc.HostEndpoint{Name: "host-eth0", IfName: "eth0"}
	mustResync(t, r, s)
	s2 := clone(s)
	cfg := *s.Config
	cfg.EndpointToHostAction = "Drop"
	cfg.FailsafeInbound = []calc.ProtoPort{{Protocol: 6, Port: 6443}}
	cfg.MasqPools = nil
	s2.Config = &cfg
	mustApply(t, r, s2, calc.Delta{Config: true})
	if diff := cmp.Diff(dumpOf(t, s2), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	dump := f.Dump(DefaultTable)
	for _, want := range []string{"th dport 6443 accept", `drop comment "endpoint to host action Drop`} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestApplyBeforeResync: the first Apply adopts the table like Resync.
func TestApplyBeforeResync(t *testing.T) {
	f := NewFake()
	mustApply(t, New(f, Options{}), baseState(), calc.Delta{Endpoints: []string{"backend"}})
	if diff := cmp.Diff(dumpOf(t, baseState()), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPortMappingConflict: two endpoints mapping one host port: the first
// keeps it; when it goes, a resync gives the port to the other.
func TestPortMappingConflict(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	s2 := clone(s)
	ep := *s.Endpoints["frontend"]
	ep.PortMappings = []calc.PortMapping{{Protocol: 6, HostPort: 18080, ContainerPort: 80, Addr: netip.MustParseAddr("10.65.0.2")}}
	s2.Endpoints["frontend"] = &ep
	mustApply(t, r, s2, calc.Delta{Endpoints: []string{"frontend"}})
	if !strings.Contains(f.Dump(DefaultTable), "tcp . 18080 : 10.65.0.3 . 8080") {
		t.Error("the mapping's owner lost it")
	}
	s3 := clone(s2)
	delete(s3.Endpoints, "backend")
	mustApply(t, r, s3, calc.Delta{Endpoints: []string{"backend"}})
	mustResync(t, r, s3)
	if !strings.Contains(f.Dump(DefaultTable), "tcp . 18080 : 10.65.0.2 . 80") {
		t.Error("the remaining endpoint did not get the port after a resync")
	}
}

// TestDeltaSetRandom changes an address set at random (members that
// merge into, split and extend ranges, v4 and v6) and checks after each
// Apply that the table equals a fresh rendering of the State.
func TestDeltaSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	pool := []string{"10.65.0.1/32", "10.65.0.2/32", "10.65.0.3/32", "10.65.0.4/31", "10.65.0.0/29", "10.65.0.8/32", "10.65.1.0/24", "0.0.0.0/0", "255.255.255.255/32", "fd00::1/128", "fd00::2/127", "fd00::/64", "::/0"}
	for i := range 200 {
		var ps []netip.Prefix
		for _, p := range pool {
			if rng.IntN(3) == 0 {
				ps = append(ps, netip.MustParsePrefix(p))
			}
		}
		slices.SortFunc(ps, comparePrefixes)
		s = clone(s)
		s.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: ps, Describe: s.Sets["backend"].Describe}
		mustApply(t, r, s, calc.Delta{Sets: []string{"backend"}})
		if diff := cmp.Diff(dumpOf(t, s), f.Dump(DefaultTable)); diff != "" {
			t.Fatalf("step %d, %v: (-want +got):\n%s", i, ps, diff)
		}
	}
}

// TestSharedTierChains: endpoints with the same policies and profiles
// share one chain per direction; the chain is created with its first user
// and deleted with its last, and a tier change moves the endpoint to
// another chain.
func TestSharedTierChains(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	tier := calc.Tier{Profiles: []string{"only-r-endpoints"}, Policies: []string{chainID("policy", "allow-frontend", "ingress")}}
	countTiers := func() int { return strings.Count(f.Dump(DefaultTable), "chain tier-") }
	base := countTiers()
	s2 := clone(s)
	for i, name := range []string{"r1", "r2", "r3"} {
		s2.Endpoints[name] = &calc.Endpoint{Name: name, IfName: fmt.Sprintf("calyx00000001%02x", i),
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 65, 1, byte(i)})}, Ingress: tier, Egress: calc.Tier{Profiles: []string{"nothing-here"}}}
	}
	mustApply(t, r, s2, calc.Delta{Endpoints: []string{"r1", "r2", "r3"}})
	if got := countTiers(); got > base+2 {
		t.Errorf("three endpoints with one tier made %d new tier chains, want at most 2", got-base)
	}
	assertConsistent(t, f, s2)
	dump := f.Dump(DefaultTable)
	in1 := between(dump, `"calyx0000000100" : goto `, ",")
	if in1 == "" || !strings.Contains(dump, `"calyx0000000101" : goto `+in1) {
		t.Fatalf("r1 and r2 do not share an ingress chain:\n%s", dump)
	}

	s3 := clone(s2)
	delete(s3.Endpoints, "r1")
	delete(s3.Endpoints, "r2")
	mustApply(t, r, s3, calc.Delta{Endpoints: []string{"r1", "r2"}})
	if !strings.Contains(f.Dump(DefaultTable), "chain "+in1+" {") {
		t.Error("the shared chain went while r3 still uses it")
	}
	s4 := clone(s3)
	moved := *s4.Endpoints["r3"]
	moved.Ingress = calc.Tier{}
	s4.Endpoints["r3"] = &moved
	mustApply(t, r, s4, calc.Delta{Endpoints: []string{"r3"}})
	if strings.Contains(f.Dump(DefaultTable), "chain "+in1+" {") {
		t.Error("the shared chain survived its last user")
	}
	assertConsistent(t, f, s4)
	if diff := cmp.Diff(dumpOf(t, s4), f.Dump(DefaultTable)); diff != "" {
		t.Errorf("incremental result differs from a fresh load (-want +got):\n%s", diff)
	}
}

// between returns the text after the first before, up to the next after.
func between(s, before, after string) string {
	_, rest, ok := strings.Cut(s, before)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, after)
	return strings.TrimSpace(strings.TrimSuffix(v, "}"))
}

// TestProgrammedChainsKeepNoRules: once programmed, the chains the
// reconciler remembers hold a digest of their rules, not the rules (their
// expressions and text are most of a ruleset's memory), and the digest
// still tells an unchanged chain from a changed one.
func TestProgrammedChainsKeepNoRules(t *testing.T) {
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	mustResync(t, r, s)
	id, s2 := withoutFirstRule(s, "egress-dns", "egress")
	mustApply(t, r, s2, calc.Delta{Chains: []string{id}})
	kept := 0
	for key, fr := range r.frags {
		for _, ch := range append(slices.Clone(fr.chains), fr.tiers...) {
			if !ch.slim || ch.rules != nil {
				t.Errorf("%s: chain %s keeps %d rules (slim %v)", key, ch.spec.Name, len(ch.rules), ch.slim)
			}
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("the reconciler remembers no chain")
	}
	before := f.Transactions
	mustApply(t, r, s2, calc.Delta{Chains: []string{id}})
	if f.Transactions != before {
		t.Errorf("re-applying an unchanged chain wrote %v", opKinds(f.Last))
	}
	mustApply(t, r, s, calc.Delta{Chains: []string{id}})
	if f.Transactions != before+1 {
		t.Fatalf("restoring the chain's first rule wrote nothing")
	}
	assertConsistent(t, f, s)
}
