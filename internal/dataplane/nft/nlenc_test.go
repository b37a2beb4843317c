package nft

import (
	"context"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestEncodeMatchesGoogle: every op Netlink encodes itself (tables, base
// and regular chains, flushes, deletions, the rules of a rendered State)
// and set elements (of interval sets, verdict maps and DNAT maps) is,
// byte for byte, the message google/nftables builds for it, but for
// the acknowledgement and echo flags framing clears anyway. And a batch
// mixing both encoders keeps the ops' order.
func TestEncodeMatchesGoogle(t *testing.T) {
	rec := &countingKernel{Kernel: NewFake()}
	s := baseState()
	for id, set := range bigState(3, 10).Sets {
		s.Sets[id] = set
	}
	if err := New(rec, Options{}).Resync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	ops := append(slices.Clone(rec.last),
		Op{Kind: OpFlushChain, Chain: &ChainSpec{Name: "filter-forward"}},
		Op{Kind: OpDelChain, Chain: &ChainSpec{Name: "wl-in-x"}},
		Op{Kind: OpAddRule, Rule: &Rule{Chain: "c"}},
		Op{Kind: OpAddRule, Rule: &Rule{Chain: "c", Comment: "odd length!", Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "abc"}}}},
		Op{Kind: OpDelElems, Set: &SetSpec{Name: "wl-in", Type: MapIfname}, Elems: []Elem{
			{Key: []byte("calyx0123456789\x00"), Verdict: "goto", Chain: "wl-in-x"}, {Key: []byte("abc"), Verdict: "jump", Chain: "odd"}}},
		Op{Kind: OpDelElems, Set: &SetSpec{Name: "set4-x", Type: SetAddr4}, Elems: []Elem{{Key: []byte{10, 0, 0, 1}}, {Key: []byte{10, 0, 0, 2}, End: true}}})
	tbl := nftTable("calyx")
	kinds := map[OpKind]int{}
	base, verdicts, values, ends := false, 0, 0, 0
	mask := ^(netlink.Acknowledge | unix.NLM_F_ECHO)
	for i, op := range ops {
		if !ownEncoded(op) {
			continue
		}
		kinds[op.Kind]++
		base = base || (op.Kind == OpAddChain && op.Chain.Base != nil)
		for _, e := range op.Elems {
			switch {
			case e.Verdict != "":
				verdicts++
			case e.Val != nil:
				values++
			case e.End:
				ends++
			}
		}
		g := &Netlink{}
		enc, err := newEncoder(g)
		if err != nil {
			t.Fatal(err)
		}
		g.enc = enc
		if err := g.queueGoogle(tbl, op); err != nil {
			t.Fatal(err)
		}
		if err := g.encode(); err != nil {
			t.Fatal(err)
		}
		want := g.batch[1]
		o := &Netlink{}
		if err := o.encodeOwn(tbl.Name, op); err != nil {
			t.Fatal(err)
		}
		got := o.msgs[0]
		if got.Header.Type != want.Header.Type || got.Header.Flags&mask != want.Header.Flags&mask || string(got.Data) != string(want.Data) {
			t.Fatalf("op %d (%s): type %#x flags %#x data\n%x\ngoogle/nftables: type %#x flags %#x data\n%x",
				i, op, got.Header.Type, got.Header.Flags, got.Data, want.Header.Type, want.Header.Flags, want.Data)
		}
	}
	for _, k := range []OpKind{OpAddTable, OpAddChain, OpFlushChain, OpDelChain, OpAddRule, OpAddElems, OpDelElems} {
		if kinds[k] == 0 {
			t.Errorf("no %s op compared", k)
		}
	}
	if verdicts == 0 || values == 0 || ends == 0 {
		t.Errorf("compared %d verdict, %d value and %d interval-end elements: want some of each", verdicts, values, ends)
	}
	if !base || kinds[OpAddRule] < 20 {
		t.Errorf("compared %d rules, base chain %v: want a rendered State's", kinds[OpAddRule], base)
	}

	// The whole transaction through queue: one message per op, in order.
	k := &Netlink{}
	enc, err := newEncoder(k)
	if err != nil {
		t.Fatal(err)
	}
	k.enc = enc
	for _, op := range rec.last {
		if err := k.queue(tbl, op); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := k.frame()
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != len(rec.last)+2 {
		t.Fatalf("batch of %d messages for %d ops", len(batch), len(rec.last))
	}
	for i, op := range rec.last {
		want := map[OpKind]uint16{OpAddTable: unix.NFT_MSG_NEWTABLE, OpAddSet: unix.NFT_MSG_NEWSET,
			OpAddElems: unix.NFT_MSG_NEWSETELEM, OpDelElems: unix.NFT_MSG_DELSETELEM, OpAddChain: unix.NFT_MSG_NEWCHAIN,
			OpFlushChain: unix.NFT_MSG_DELRULE, OpAddRule: unix.NFT_MSG_NEWRULE, OpDelChain: unix.NFT_MSG_DELCHAIN, OpDelSet: unix.NFT_MSG_DELSET}[op.Kind]
		if got := uint16(batch[i+1].Header.Type) & 0xff; got != want {
			t.Fatalf("message %d is of type %d, want %d for op %s", i+1, got, want, op)
		}
	}
}
