package ipam

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// netipComparers lets go-cmp compare netip values (which have unexported
// fields) by value.
var netipComparers = cmp.Options{
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestBlockFIFO(t *testing.T) {
	b := newBlock(netip.MustParsePrefix("10.0.0.0/29"), "host:a", t0)
	if !b.Empty() || b.Size() != 8 || b.EmptySince != t0 {
		t.Fatalf("new block: empty=%v size=%d since=%v", b.Empty(), b.Size(), b.EmptySince)
	}
	h1 := Attribute{Handle: "h1", Attrs: map[string]string{"node": "a"}}
	h2 := Attribute{Handle: "h2", Attrs: map[string]string{"node": "a"}}
	if got := b.assignNext(3, h1); !cmp.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("first assign: %v", got)
	}
	if !b.EmptySince.IsZero() {
		t.Error("EmptySince kept while in use")
	}
	b.assignNext(2, h2)
	// Released ordinals go to the back, in release order.
	b.release([]int{1, 0}, t0)
	if diff := cmp.Diff([]int{5, 6, 7, 1, 0}, b.FreeOrder()); diff != "" {
		t.Errorf("free order after release (-want +got):\n%s", diff)
	}
	if got := b.assignNext(4, h2); !cmp.Equal(got, []int{5, 6, 7, 1}) {
		t.Errorf("reuse order: %v", got)
	}
	// Attributes are shared per owner and dropped with their last address.
	if len(b.attrs) != 2 {
		t.Errorf("attributes %v, want 2 entries", b.attrs)
	}
	if got := b.release(b.ordinalsOf("h1"), t0.Add(time.Minute)); got["h1"] != 1 {
		t.Errorf("release h1: %v", got)
	}
	if len(b.attrs) != 1 || b.attrs[0].Handle != "h2" {
		t.Errorf("attributes after h1 left: %v", b.attrs)
	}
	for _, o := range b.Allocated() {
		if at, _ := b.Owner(o); at.Handle != "h2" {
			t.Errorf("ordinal %d owner %q after renumbering", o, at.Handle)
		}
	}
	b.release(b.ordinalsOf("h2"), t0.Add(2*time.Minute))
	if !b.Empty() || !b.EmptySince.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("emptied block: empty=%v since=%v", b.Empty(), b.EmptySince)
	}
	// Releasing what is free changes nothing.
	if got := b.release([]int{3}, t0); len(got) != 0 {
		t.Errorf("release of a free ordinal: %v", got)
	}
}

func TestBlockAssignOrdinal(t *testing.T) {
	b := newBlock(netip.MustParsePrefix("fd65::/126"), "", t0)
	at := Attribute{Handle: "h"}
	o, _ := b.Ordinal(netip.MustParseAddr("fd65::2"))
	if _, ok := b.assignOrdinal(o, at); !ok {
		t.Fatal("assignOrdinal of a free ordinal failed")
	}
	if owner, ok := b.assignOrdinal(o, Attribute{Handle: "other"}); ok || owner.Handle != "h" {
		t.Errorf("second assign: %v %v", owner, ok)
	}
	if diff := cmp.Diff([]int{0, 1, 3}, b.FreeOrder()); diff != "" {
		t.Errorf("free list (-want +got):\n%s", diff)
	}
	if got := b.Addr(3); got != netip.MustParseAddr("fd65::3") {
		t.Errorf("Addr(3) = %s", got)
	}
	if _, ok := b.Ordinal(netip.MustParseAddr("fd65::4")); ok {
		t.Error("address outside the block has an ordinal")
	}
}

func TestSingleAddressBlocks(t *testing.T) {
	for _, cidr := range []string{"10.0.0.9/32", "fd65::9/128"} {
		b := newBlock(netip.MustParsePrefix(cidr), "host:a", t0)
		if b.Size() != 1 {
			t.Fatalf("%s size %d", cidr, b.Size())
		}
		got := b.assignNext(1, Attribute{Handle: "h"})
		if b.Addr(got[0]).String()+"/"+cidr[strings.Index(cidr, "/")+1:] != cidr || b.Free() != 0 {
			t.Errorf("%s: assigned %s, free %d", cidr, b.Addr(got[0]), b.Free())
		}
	}
}

func TestBlockJSON(t *testing.T) {
	b := newBlock(netip.MustParsePrefix("10.65.0.64/30"), "host:node-a", t0)
	b.assignNext(1, Attribute{Handle: "net.c1.eth0", Attrs: map[string]string{"node": "node-a"}})
	val, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cidr":"10.65.0.64/30","affinity":"host:node-a","allocations":[0,null,null,null],"unallocated":[1,2,3],` +
		`"attributes":[{"handle":"net.c1.eth0","attrs":{"node":"node-a"}}]}`
	if string(val) != want {
		t.Errorf("stored block\n got %s\nwant %s", val, want)
	}
	back, err := decodeBlock(val)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, back, cmp.AllowUnexported(Block{}), netipComparers); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	b.release([]int{0}, t0)
	val, _ = json.Marshal(b)
	if !strings.Contains(string(val), `"emptySince":"2026-11-29T12:00:00Z"`) {
		t.Errorf("empty block lacks emptySince: %s", val)
	}

	// A free list that disagrees with the allocations is repaired.
	back, err = decodeBlock([]byte(`{"cidr":"10.0.0.0/30","allocations":[0,null,null,null],"unallocated":[0,2,2],"attributes":[{"handle":"h"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{2, 1, 3}, back.FreeOrder()); diff != "" {
		t.Errorf("repaired free list (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		`{"cidr":"10.0.0.1/30","allocations":[null,null,null,null]}`,
		`{"cidr":"10.0.0.0/30","allocations":[null]}`,
		`{"cidr":"10.0.0.0/30","allocations":[3,null,null,null],"attributes":[]}`,
		`not json`,
	} {
		if _, err := decodeBlock([]byte(bad)); err == nil {
			t.Errorf("decodeBlock(%s) accepted", bad)
		}
	}
}
