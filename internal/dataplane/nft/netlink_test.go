package nft

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// extraOps is a large transaction on top of a programmed table: a new
// interval set with 2,000 intervals (in messages of 1,000 elements), n
// new chains with a rule each, and one map of elements per chain.
func extraOps(n int) []Op {
	set := &SetSpec{Name: "extra", Type: SetAddr4, Comment: "extra"}
	ops := []Op{{Kind: OpAddSet, Set: set}}
	for part := range 2 {
		var elems []Elem
		for i := range 500 {
			c, d := byte(4*part+i/128), byte(2*(i%128))
			elems = append(elems,
				Elem{Key: []byte{10, 200, c, d}},
				Elem{Key: []byte{10, 200, c, d + 1}, End: true})
		}
		ops = append(ops, Op{Kind: OpAddElems, Set: set, Elems: elems})
	}
	for i := range n {
		name := fmt.Sprintf("extra-%d", i)
		ops = append(ops,
			Op{Kind: OpAddChain, Chain: &ChainSpec{Name: name}},
			Op{Kind: OpAddRule, Rule: &Rule{Chain: name, Comment: "extra rule " + name, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}}})
	}
	return ops
}

// TestNetlinkRefusedOpInBatch: a transaction of thousands of ops with one
// the kernel refuses (a rule in a chain that does not exist), first, in
// the middle or last, fails naming that op and its errno, and the kernel
// applies none of it: the table reads back as before. The same
// transaction without the bad op then succeeds on the same socket.
func TestNetlinkRefusedOpInBatch(t *testing.T) {
	k := benchKernel(t)
	ctx := context.Background()
	if err := New(k, Options{}).Resync(ctx, bigState(20, 1000)); err != nil {
		t.Fatal(err)
	}
	before, err := k.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	good := extraOps(1000)
	bad := Op{Kind: OpAddRule, Rule: &Rule{Chain: "no-such-chain", Comment: "bad", Text: "accept", Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}}}
	for _, at := range []int{0, len(good) / 2, len(good)} {
		ops := append(append(append([]Op{}, good[:at]...), bad), good[at:]...)
		err := k.Run(ctx, DefaultTable, ops)
		want := fmt.Sprintf("running a transaction of %d ops: op %d (add rule no-such-chain accept) refused: ", len(ops), at)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("bad op at %d: Run = %v, want an error containing %q and wrapping ENOENT", at, err, want)
		}
		after, err := k.List(ctx, DefaultTable)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("bad op at %d: the refused transaction changed the table (%d chains, %d sets; before %d, %d)",
				at, len(after.Chains), len(after.Sets), len(before.Chains), len(before.Sets))
		}
	}
	if err := k.Run(ctx, DefaultTable, good); err != nil {
		t.Fatalf("the transaction without the bad op: %v", err)
	}
	after, err := k.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Chains["extra-999"]; !reflect.DeepEqual(got, []string{"extra rule extra-999"}) {
		t.Errorf("chain extra-999 holds %q, want its one rule", got)
	}
	if n := len(after.Sets["extra"]); n != 2000 {
		t.Errorf("set extra holds %d elements, want 2000", n)
	}
}

// TestNetlinkTwoRefusedOps: with two refused ops the error names the
// first, and the next transaction is not confused by the second's
// report.
func TestNetlinkTwoRefusedOps(t *testing.T) {
	k := benchKernel(t)
	ctx := context.Background()
	if err := k.Run(ctx, DefaultTable, []Op{{Kind: OpAddTable}}); err != nil {
		t.Fatal(err)
	}
	ops := extraOps(10)
	ops = append(ops,
		Op{Kind: OpDelChain, Chain: &ChainSpec{Name: "missing-1"}},
		Op{Kind: OpAddRule, Rule: &Rule{Chain: "extra-3", Comment: "ok"}},
		Op{Kind: OpDelChain, Chain: &ChainSpec{Name: "missing-2"}})
	err := k.Run(ctx, DefaultTable, ops)
	want := fmt.Sprintf("op %d (delete chain missing-1) refused", len(ops)-3)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run = %v, want an error containing %q", err, want)
	}
	if err := k.Run(ctx, DefaultTable, extraOps(10)); err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
	l, err := k.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Chains) != 10 || len(l.Sets["extra"]) != 2000 {
		t.Errorf("table holds %d chains and %d elements, want 10 and 2000", len(l.Chains), len(l.Sets["extra"]))
	}
}

// TestNetlinkListMatchesFake: the rules Netlink reads back (one dump of
// the table, decoding only chain names and comments) are, chain by
// chain and in order, those the Fake holds for the same State, empty
// chains included, and none of another table's.
func TestNetlinkListMatchesFake(t *testing.T) {
	k := benchKernel(t)
	ctx := context.Background()
	s := bigState(200, 100)
	f := NewFake()
	for _, kern := range []Kernel{k, f} {
		if err := New(kern, Options{}).Resync(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Run(ctx, DefaultTable, []Op{{Kind: OpAddChain, Chain: &ChainSpec{Name: "empty"}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Run(ctx, DefaultTable, []Op{{Kind: OpAddChain, Chain: &ChainSpec{Name: "empty"}}}); err != nil {
		t.Fatal(err)
	}
	// Another table with a chain of the same name: not listed.
	other := []Op{{Kind: OpAddTable}, {Kind: OpAddChain, Chain: &ChainSpec{Name: "filter-forward"}},
		{Kind: OpAddRule, Rule: &Rule{Chain: "filter-forward", Comment: "other table"}}}
	if err := k.Run(ctx, "other", other); err != nil {
		t.Fatal(err)
	}
	got, err := k.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Chains) != len(want.Chains) {
		t.Errorf("kernel lists %d chains, the Fake %d", len(got.Chains), len(want.Chains))
	}
	for name, w := range want.Chains {
		g, ok := got.Chains[name]
		if !ok || len(g) != len(w) || (len(w) > 0 && !reflect.DeepEqual(g, w)) {
			t.Errorf("chain %s: kernel lists %q, the Fake %q", name, g, w)
		}
	}
	if got.Chains["empty"] == nil {
		t.Error("the empty chain is missing from the listing")
	}
}

// googleSetElems is how List read set elements before it dumped them
// itself: google/nftables' decoding, the reference setElems must match.
func googleSetElems(t *testing.T, k *Netlink, table string) map[string][]Elem {
	t.Helper()
	sets, err := k.conn.GetSets(nftTable(table))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Elem{}
	for _, s := range sets {
		elems, err := k.conn.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		l := make([]Elem, len(elems))
		for i, e := range elems {
			l[i] = Elem{Key: e.Key, End: e.IntervalEnd, Val: e.Val}
			if s.IsMap && (s.DataType.Name == "" || s.DataType.Name == nftables.TypeVerdict.Name) {
				// v0.3.0 hands a verdict back undecoded
				v, err := decodeVerdict(e.Val)
				if err != nil {
					t.Fatal(err)
				}
				l[i].Val, l[i].Verdict, l[i].Chain = nil, verdictName(v.Kind), v.Chain
			}
		}
		out[s.Name] = l
	}
	return out
}

// TestNetlinkSetElemsMatchGoogle: the set elements List dumps itself
// (interval sets of both families, a named-port set, verdict maps, DNAT
// maps, an empty set) are, set by set and in order, those google/nftables
// decodes from the same table.
func TestNetlinkSetElemsMatchGoogle(t *testing.T) {
	k := benchKernel(t)
	ctx := context.Background()
	s := baseState()
	s.Sets["empty"] = &calc.Set{ID: "empty", Kind: calc.AddrSet, Describe: "nothing"}
	big := bigState(3, 3000)
	for id, set := range big.Sets {
		s.Sets[id] = set
	}
	s.Chains["policy/uses-empty/ingress"] = &calc.Chain{ID: "policy/uses-empty/ingress", Kind: calc.KindPolicy, Name: "uses-empty", Dir: calc.Ingress,
		Rules: []calc.Rule{{Action: calc.ActionAllow, Src: calc.Match{Sets: []string{"empty", "big"}}}}}
	ep := *s.Endpoints["frontend"]
	ep.Ingress.Policies = append(ep.Ingress.Policies, "policy/uses-empty/ingress")
	s.Endpoints["frontend"] = &ep
	if err := New(k, Options{}).Resync(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := k.List(ctx, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	want := googleSetElems(t, k, DefaultTable)
	if len(got.Sets) != len(want) {
		t.Errorf("List found %d sets, google/nftables %d", len(got.Sets), len(want))
	}
	kinds := map[string]bool{}
	for name, w := range want {
		g := got.Sets[name]
		if len(g) != len(w) {
			t.Errorf("set %s: %d elements, google/nftables %d", name, len(g), len(w))
			continue
		}
		for i := range w {
			if !reflect.DeepEqual(g[i], w[i]) {
				t.Errorf("set %s element %d: %+v, google/nftables %+v", name, i, g[i], w[i])
				break
			}
			switch {
			case w[i].Verdict != "":
				kinds["verdict"] = true
			case w[i].Val != nil:
				kinds["value"] = true
			case w[i].End:
				kinds["interval end"] = true
			}
		}
		if len(w) == 0 {
			kinds["empty"] = true
		}
	}
	for _, k := range []string{"verdict", "value", "interval end", "empty"} {
		if !kinds[k] {
			t.Errorf("no %s element among the sets compared", k)
		}
	}
	if n := len(got.Sets["set4-big"]); n != 6000 {
		t.Errorf("set4-big holds %d elements, want 6000", n)
	}
}
