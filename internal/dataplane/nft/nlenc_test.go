package nft

import (
	"context"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestEncodeMatchesGoogle: every op Netlink encodes itself (tables, base
// and regular chains, flushes, deletions, the rules of a rendered State)
// is, byte for byte, the message google/nftables builds for it, but for
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
	ops := append(rec.last,
		Op{Kind: OpFlushChain, Chain: &ChainSpec{Name: "filter-forward"}},
		Op{Kind: OpDelChain, Chain: &ChainSpec{Name: "wl-in-x"}},
		Op{Kind: OpAddRule, Rule: &Rule{Chain: "c"}},
		Op{Kind: OpAddRule, Rule: &Rule{Chain: "c", Comment: "odd length!", Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "abc"}}}})
	tbl := nftTable("calyx")
	kinds := map[OpKind]int{}
	base := false
	mask := ^(netlink.Acknowledge | unix.NLM_F_ECHO)
	for i, op := range ops {
		if !ownEncoded(op) {
			continue
		}
		kinds[op.Kind]++
		base = base || (op.Kind == OpAddChain && op.Chain.Base != nil)
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
	for _, k := range []OpKind{OpAddTable, OpAddChain, OpFlushChain, OpDelChain, OpAddRule} {
		if kinds[k] == 0 {
			t.Errorf("no %s op compared", k)
		}
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
