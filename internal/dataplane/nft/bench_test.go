package nft

import (
	"context"
	"net/netip"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/testnet"
)

// Benchmarks of reference/performance.md B3 against a real kernel, in a
// namespace of their own: 1,000 endpoints, each with its own policy
// chain (1,000) selecting through one 10,000-address set.

func benchKernel(b testing.TB) *Netlink {
	b.Helper()
	n := testnet.NewNS(b)
	h, err := netns.Open(n.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	k, err := NewNetlink(h)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k.Close() })
	return k
}

// BenchmarkFullApply programs the whole State into an empty table.
func BenchmarkFullApply(b *testing.B) {
	k := benchKernel(b)
	s := bigState(1000, 10000)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		if l, err := k.List(ctx, DefaultTable); err != nil {
			b.Fatal(err)
		} else if l != nil {
			if err := k.deleteTable(DefaultTable); err != nil {
				b.Fatal(err)
			}
		}
		r := New(k, Options{})
		b.StartTimer()
		if err := r.Resync(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncrementalSetMember adds or removes one member of the
// 10,000-address set.
func BenchmarkIncrementalSetMember(b *testing.B) {
	k := benchKernel(b)
	s := bigState(1000, 10000)
	r := New(k, Options{})
	ctx := context.Background()
	if err := r.Resync(ctx, s); err != nil {
		b.Fatal(err)
	}
	with := clone(s)
	big := *s.Sets["big"]
	big.Prefixes = append([]netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}, big.Prefixes...)
	with.Sets["big"] = &big
	states := []*calc.State{with, s}
	i := 0
	for b.Loop() {
		if err := r.Apply(ctx, states[i%2], calc.Delta{Sets: []string{"big"}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkIncrementalChainEdit edits one policy's rule.
func BenchmarkIncrementalChainEdit(b *testing.B) {
	k := benchKernel(b)
	s := bigState(1000, 10000)
	r := New(k, Options{})
	ctx := context.Background()
	if err := r.Resync(ctx, s); err != nil {
		b.Fatal(err)
	}
	id := "policy/pol7/ingress"
	edited := clone(s)
	c := *s.Chains[id]
	c.Rules = []calc.Rule{c.Rules[0]}
	c.Rules[0].Dst.Ports = []calc.PortRange{{Min: 7777, Max: 7777}}
	edited.Chains[id] = &c
	states := []*calc.State{edited, s}
	i := 0
	for b.Loop() {
		if err := r.Apply(ctx, states[i%2], calc.Delta{Chains: []string{id}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkIncrementalEndpoint adds or removes one endpoint (its two
// chains and two map elements).
func BenchmarkIncrementalEndpoint(b *testing.B) {
	k := benchKernel(b)
	s := bigState(1000, 10000)
	r := New(k, Options{})
	ctx := context.Background()
	if err := r.Resync(ctx, s); err != nil {
		b.Fatal(err)
	}
	with := clone(s)
	ep := *s.Endpoints["ep1"]
	ep.Name, ep.IfName = "extra", "calyxffffffffff"
	with.Endpoints["extra"] = &ep
	states := []*calc.State{with, s}
	i := 0
	for b.Loop() {
		if err := r.Apply(ctx, states[i%2], calc.Delta{Endpoints: []string{"extra"}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkList reads the programmed table back, as each Resync does.
func BenchmarkList(b *testing.B) {
	k := benchKernel(b)
	s := bigState(1000, 10000)
	ctx := context.Background()
	if err := New(k, Options{}).Resync(ctx, s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.List(ctx, DefaultTable); err != nil {
			b.Fatal(err)
		}
	}
}
