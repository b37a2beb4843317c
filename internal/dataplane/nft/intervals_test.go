package nft

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/go-cmp/cmp"
)

// randomPrefix returns a prefix in a small space (10.65.0.0/26 or
// fd00::/122, now and then the whole space or its last address), so
// that members overlap, nest, touch and split each other's intervals.
func randomPrefix(rng *rand.Rand) netip.Prefix {
	switch rng.IntN(40) {
	case 0:
		return netip.MustParsePrefix("0.0.0.0/0")
	case 1:
		return netip.MustParsePrefix("255.255.255.255/32")
	case 2:
		return netip.MustParsePrefix("::/0")
	case 3:
		return netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
	}
	if rng.IntN(4) == 0 {
		a := netip.MustParseAddr("fd00::").As16()
		a[15] = byte(rng.IntN(64))
		return netip.PrefixFrom(netip.AddrFrom16(a), 122+rng.IntN(7)).Masked()
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, 0, byte(rng.IntN(64))}), 26+rng.IntN(7)).Masked()
}

// mutate returns ps with one to four random members added or removed,
// sorted and without duplicates, as calc hands them; ps is not modified.
func mutate(rng *rand.Rand, ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	for range 1 + rng.IntN(4) {
		if len(out) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(out))
			out = slices.Delete(out, i, i+1)
			continue
		}
		out = append(out, randomPrefix(rng))
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out)
}

// TestPlanEditRandom: the intervals planEdit derives from the old ones
// by editing only around the changed members equal a fresh merge of the
// new members, both when applied to a copy and in place, and the
// intervals it deletes and adds are exactly those that differ. Now and
// then the new members come shuffled or unmasked, which the walk must
// notice.
func TestPlanEditRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ps []netip.Prefix
	for range 30 {
		ps = mutate(rng, ps)
	}
	for step := range 3000 {
		nps := mutate(rng, ps)
		given := nps
		switch rng.IntN(10) {
		case 0:
			given = slices.Clone(nps)
			rng.Shuffle(len(given), func(i, j int) { given[i], given[j] = given[j], given[i] })
		case 1:
			if len(nps) > 0 {
				given = slices.Clone(nps)
				i := rng.IntN(len(given))
				a := given[i].Addr().AsSlice()
				a[len(a)-1] |= 1
				q, _ := netip.AddrFromSlice(a)
				given[i] = netip.PrefixFrom(q, given[i].Bits())
			}
		}
		for _, typ := range []SetType{SetAddr4, SetAddr6} {
			old := addrSet("s", typ, "", ps)
			nw := addrSet("s", typ, "", given)
			want := mergePrefixes(addrSet("s", typ, "", given).family())
			wantGone, wantCame := diffRanges(old.intervals(), want)
			gone, came, edit := nw.planEdit(old)
			if diff := cmp.Diff([][]addrRange{wantGone, wantCame}, [][]addrRange{gone, came}, cmp.Comparer(func(a, b addrRange) bool { return a == b })); diff != "" {
				t.Fatalf("step %d, %v -> %v: gone, came (-want +got):\n%s", step, ps, given, diff)
			}
			if edit == nil {
				if !slices.Equal(old.intervals(), want) {
					t.Fatalf("step %d, %v -> %v: no edit, but the intervals differ", step, ps, given)
				}
				continue
			}
			if got := edit.apply(false); !slices.Equal(got, want) {
				t.Fatalf("step %d, %v -> %v: edited copy %v, want %v", step, ps, given, got, want)
			}
			if !slices.Equal(old.intervals(), mergePrefixes(old.family())) {
				t.Fatalf("step %d: applying to a copy changed the old intervals", step)
			}
			if got := edit.apply(true); !slices.Equal(got, want) {
				t.Fatalf("step %d, %v -> %v: edited in place %v, want %v", step, ps, given, got, want)
			}
		}
		ps = nps
	}
}

// TestFamilyPrefixes: unsorted, unmasked or invalid input is sorted,
// masked and cleaned; sorted, masked input is used as it is.
func TestFamilyPrefixes(t *testing.T) {
	v4, v6 := familyPrefixes([]netip.Prefix{netip.MustParsePrefix("fd00::1/64"), {}, netip.MustParsePrefix("10.0.0.9/24"), netip.MustParsePrefix("10.0.0.0/8")})
	if diff := cmp.Diff([]string{"10.0.0.0/8", "10.0.0.0/24", "fd00::/64"}, prefixStrings(append(v4, v6...))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	in := pfx("10.0.0.0/8", "10.1.0.0/16", "fd00::/64")
	v4, v6 = familyPrefixes(in)
	if len(v4) != 2 || len(v6) != 1 || &v4[0] != &in[0] || &v6[0] != &in[2] {
		t.Errorf("familyPrefixes(%v) = %v, %v: want sub-slices of the input", in, v4, v6)
	}
}

// TestNormalized: normalized agrees with masking and sorting.
func TestNormalized(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	unclean := 0
	defer func() {
		if unclean < 1000 || unclean > 4000 {
			t.Errorf("%d of 5000 cases unclean: the test does not cover both outcomes well", unclean)
		}
	}()
	for i := range 5000 {
		var ps []netip.Prefix
		for range rng.IntN(5) {
			p := randomPrefix(rng)
			switch rng.IntN(6) {
			case 0: // unmasked: an address inside the prefix
				a := p.Addr().AsSlice()
				a[len(a)-1] |= byte(rng.IntN(4))
				q, _ := netip.AddrFromSlice(a)
				p = netip.PrefixFrom(q, p.Bits())
			case 1: // IPv4-mapped IPv6
				p = netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96*bool2int(p.Addr().Is4()))
			}
			ps = append(ps, p)
		}
		if rng.IntN(2) == 0 {
			slices.SortFunc(ps, comparePrefixes)
		}
		want := true
		for j, p := range ps {
			if !p.IsValid() || p != p.Masked() || j > 0 && comparePrefixes(ps[j-1], p) > 0 {
				want = false
			}
		}
		if !want {
			unclean++
		}
		if got := normalized(ps); got != want {
			t.Fatalf("case %d: normalized(%v) = %v, want %v", i, ps, got, want)
		}
	}
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestDeltaSetIncrementalRandom changes a few members of a set of
// hundreds at a time, now and then with a refused transaction, and checks
// after each Apply that the table equals a fresh load of the State and
// that the Reconciler's memory of the set's intervals is right.
func TestDeltaSetIncrementalRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := NewFake()
	r := New(f, Options{})
	s := baseState()
	var ps []netip.Prefix
	for range 200 {
		ps = mutate(rng, ps)
	}
	s.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: ps, Describe: s.Sets["backend"].Describe}
	mustResync(t, r, s)
	ctx := context.Background()
	for step := range 400 {
		ps = mutate(rng, ps)
		given := ps
		if rng.IntN(10) == 0 { // not as calc hands them: the renderer copes
			given = slices.Clone(ps)
			rng.Shuffle(len(given), func(i, j int) { given[i], given[j] = given[j], given[i] })
		}
		s = clone(s)
		s.Sets["backend"] = &calc.Set{ID: "backend", Kind: calc.AddrSet, Prefixes: given, Describe: s.Sets["backend"].Describe}
		d := calc.Delta{Sets: []string{"backend"}}
		if step%25 == 24 {
			f.FailNext = errors.New("netlink: no buffer space")
			err := r.Apply(ctx, s, d)
			switch {
			case f.FailNext != nil:
				f.FailNext = nil // the members did not change: nothing to write
			case err == nil:
				t.Fatalf("step %d: Apply did not report the refused transaction", step)
			}
		}
		mustApply(t, r, s, d)
		if diff := cmp.Diff(dumpOf(t, s), f.Dump(DefaultTable)); diff != "" {
			t.Fatalf("step %d, %v: (-want +got):\n%s", step, ps, diff)
		}
		v4, v6 := familyPrefixes(ps)
		for i, fam := range [][]netip.Prefix{v4, v6} {
			if got, want := r.frags[prefixSet+"backend"].sets[i].intervals(), mergeSorted(fam); !slices.Equal(got, want) {
				t.Fatalf("step %d: remembered intervals %v, want %v", step, got, want)
			}
		}
	}
	assertConsistent(t, f, s)
}

// TestDeltaSetMemberAllocs: planning a one-member change of an address
// set allocates as much for 10,000 members as for 100: the set is not
// rendered again.
func TestDeltaSetMemberAllocs(t *testing.T) {
	allocs := func(members int) float64 {
		s := bigState(1, members)
		old := renderSet(s.Sets["big"])
		old[0].intervals()
		with := *s.Sets["big"]
		with.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}, with.Prefixes...)
		return testing.AllocsPerRun(20, func() {
			nw := renderSet(&with)
			dels, adds := diffSets(old[0], nw[0])
			if len(dels) != 0 || len(adds) != 1 {
				t.Fatalf("%d members: %d delete and %d add ops, want 0 and 1", members, len(dels), len(adds))
			}
		})
	}
	small, large := allocs(100), allocs(10000)
	if large > small {
		t.Errorf("a one-member change allocates %v times with 10,000 members, %v with 100: want no more", large, small)
	}
}

// acceptKernel accepts every transaction and holds nothing: what Apply
// costs without a kernel.
type acceptKernel struct{}

func (acceptKernel) Run(context.Context, string, []Op) error        { return nil }
func (acceptKernel) List(context.Context, string) (*Listing, error) { return nil, nil }
func (acceptKernel) Generation(context.Context) (uint32, error)     { return 0, nil }

// BenchmarkApplyGo is the Go side of an incremental Apply (the kernel
// accepts everything at once), at 100 endpoints and policies with a
// 1,000-address set and at 1,000 with 10,000: the two should cost the
// same.
func BenchmarkApplyGo(b *testing.B) {
	for _, size := range []struct{ n, members int }{{100, 1000}, {1000, 10000}} {
		for _, name := range []string{"set member", "endpoint", "policy edit"} {
			b.Run(fmt.Sprintf("%s/%d", strings.ReplaceAll(name, " ", "_"), size.n), func(b *testing.B) {
				s := bigState(size.n, size.members)
				r := New(acceptKernel{}, Options{})
				ctx := context.Background()
				if err := r.Resync(ctx, s); err != nil {
					b.Fatal(err)
				}
				w, d := incrementalChanges()[name](s)
				states := []*calc.State{w, s}
				i := 0
				for b.Loop() {
					if err := r.Apply(ctx, states[i%2], d); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// incrementalChanges are B3's incremental changes of a bigState: each
// returns the changed State and the Delta from s.
func incrementalChanges() map[string]func(s *calc.State) (*calc.State, calc.Delta) {
	return map[string]func(s *calc.State) (*calc.State, calc.Delta){
		"set member": func(s *calc.State) (*calc.State, calc.Delta) {
			w := clone(s)
			big := *s.Sets["big"]
			big.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}, big.Prefixes...)
			w.Sets["big"] = &big
			return w, calc.Delta{Sets: []string{"big"}}
		},
		"endpoint": func(s *calc.State) (*calc.State, calc.Delta) {
			w := clone(s)
			ep := *s.Endpoints["ep1"]
			ep.Name, ep.IfName = "extra", "calyxffffffffff"
			w.Endpoints["extra"] = &ep
			return w, calc.Delta{Endpoints: []string{"extra"}}
		},
		"policy edit": func(s *calc.State) (*calc.State, calc.Delta) {
			w := clone(s)
			id := "policy/pol7/ingress"
			c := *s.Chains[id]
			c.Rules = []calc.Rule{c.Rules[0]}
			c.Rules[0].Dst.Ports = []calc.PortRange{{Min: 7777, Max: 7777}}
			w.Chains[id] = &c
			return w, calc.Delta{Chains: []string{id}}
		},
	}
}
