package nft

import (
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestEncodeBatchFlags: encoding stops google/nftables' Flush at its
// first read for acknowledgements; the framed batch asks for one
// acknowledgement, on its last op (not on BATCH_END), and no echo,
// whatever flags google/nftables set; messages keep their types and
// payloads, with consecutive sequence numbers.
func TestEncodeBatchFlags(t *testing.T) {
	k := &Netlink{}
	reads := 0
	enc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			reads++
		}
		return k.capture(req)
	}))
	if err != nil {
		t.Fatal(err)
	}
	k.enc = enc
	tbl := nftTable("t")
	ops := []Op{
		{Kind: OpAddTable},
		{Kind: OpAddChain, Chain: &ChainSpec{Name: "c"}},
		{Kind: OpAddRule, Rule: &Rule{Chain: "c", Comment: "one"}},
		{Kind: OpAddRule, Rule: &Rule{Chain: "c", Comment: "two"}},
	}
	for _, op := range ops {
		if err := k.queueGoogle(tbl, op); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.encode(); err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Errorf("encoding read %d acknowledgements, want 1 (then stop)", reads)
	}
	if len(k.batch) != len(ops)+2 {
		t.Fatalf("batch of %d messages, want %d", len(k.batch), len(ops)+2)
	}
	if k.batch[3].Header.Flags&unix.NLM_F_ECHO == 0 {
		t.Fatal("google/nftables no longer asks for an echo of new rules: this test checks nothing")
	}
	s := &nlSocket{seq: 41}
	first := s.encode(k.batch, func(i int) bool { return i == len(k.batch)-2 })
	if first != 42 {
		t.Errorf("first sequence number %d, want 42", first)
	}
	i := 0
	err = nlMessages(s.out, func(typ, flags uint16, seq uint32, data []byte) bool {
		m := k.batch[i]
		if typ != uint16(m.Header.Type) || string(data) != string(m.Data) {
			t.Errorf("message %d: type %#x with %d bytes, want %#x with %d", i, typ, len(data), m.Header.Type, len(m.Data))
		}
		if seq != first+uint32(i) {
			t.Errorf("message %d: sequence number %d, want %d", i, seq, first+uint32(i))
		}
		wantAck := i == len(k.batch)-2
		if got := flags&uint16(netlink.Acknowledge) != 0; got != wantAck {
			t.Errorf("message %d: acknowledgement asked %v, want %v", i, got, wantAck)
		}
		if flags&unix.NLM_F_ECHO != 0 {
			t.Errorf("message %d asks for an echo", i)
		}
		i++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(k.batch) {
		t.Errorf("decoded %d messages, want %d", i, len(k.batch))
	}
}
