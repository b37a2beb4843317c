package ipam

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/calyx-net/calyx/internal/api"
)

// Block is one block of a pool: which of its addresses are allocated, to
// which handle, and which are free in the order they will be handed out.
// It is plain data; the allocator clones a cached Block, changes the clone
// and writes it with a compare-and-swap.
type Block struct {
	CIDR netip.Prefix
	// Affinity is "host:<node>" for a block claimed by node, empty for a
	// block no host owns (only borrowable).
	Affinity string
	// alloc holds, per ordinal, the index into attrs of the owner, or -1.
	alloc []int32
	// free is the FIFO of free ordinals: allocation takes from the front,
	// release appends to the back, so a released address is reused last.
	free  []int32
	attrs []Attribute
	// EmptySince is when the block last became empty (zero while in use),
	// for the grace period before an empty block gives up its affinity.
	EmptySince time.Time
}

// Attribute is the owner of one or more allocations: its handle and
// free-form attributes (node, orchestrator, workload, ...). Allocations of
// the same owner share one entry.
type Attribute struct {
	Handle string            `json:"handle"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

func (a Attribute) equal(b Attribute) bool {
	return a.Handle == b.Handle && maps.Equal(a.Attrs, b.Attrs)
}

// hostAffinity is the Affinity value of a block claimed by node.
func hostAffinity(node string) string { return "host:" + node }

// affineNode returns the node a block is affine to, or "".
func (b *Block) affineNode() string {
	if len(b.Affinity) > 5 && b.Affinity[:5] == "host:" {
		return b.Affinity[5:]
	}
	return ""
}

// newBlock returns an empty block with every ordinal free, in order.
func newBlock(cidr netip.Prefix, affinity string, now time.Time) *Block {
	n := 1 << (addrBits(cidr.Addr()) - cidr.Bits())
	b := &Block{CIDR: cidr, Affinity: affinity, alloc: make([]int32, n), free: make([]int32, n), EmptySince: now.UTC()}
	for i := range n {
		b.alloc[i] = -1
		b.free[i] = int32(i)
	}
	return b
}

func (b *Block) clone() *Block {
	c := *b
	c.alloc = slices.Clone(b.alloc)
	c.free = slices.Clone(b.free)
	c.attrs = slices.Clone(b.attrs)
	return &c
}

// Size is the number of addresses in the block.
func (b *Block) Size() int { return len(b.alloc) }

// Free is the number of unallocated addresses.
func (b *Block) Free() int { return len(b.free) }

// InUse is the number of allocated addresses.
func (b *Block) InUse() int { return len(b.alloc) - len(b.free) }

// Empty reports whether no address is allocated.
func (b *Block) Empty() bool { return len(b.free) == len(b.alloc) }

// Addr returns the address of ordinal ord.
func (b *Block) Addr(ord int) netip.Addr {
	base := addrU128(b.CIDR.Addr())
	return u128Addr(base.add(u128{0, uint64(ord)}), b.CIDR.Addr().Is4())
}

// Ordinal returns the ordinal of a, if a is in the block.
func (b *Block) Ordinal(a netip.Addr) (int, bool) {
	if !b.CIDR.Contains(a) {
		return 0, false
	}
	d := addrU128(a).sub(addrU128(b.CIDR.Addr()))
	return int(d.lo), true
}

// Owner returns who holds ordinal ord.
func (b *Block) Owner(ord int) (Attribute, bool) {
	if ord < 0 || ord >= len(b.alloc) || b.alloc[ord] < 0 {
		return Attribute{}, false
	}
	return b.attrs[b.alloc[ord]], true
}

// Allocated returns every allocated ordinal in order.
func (b *Block) Allocated() []int {
	var out []int
	for i, a := range b.alloc {
		if a >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// FreeOrder returns the free ordinals in the order they will be handed out.
func (b *Block) FreeOrder() []int {
	out := make([]int, len(b.free))
	for i, o := range b.free {
		out[i] = int(o)
	}
	return out
}

// ordinalsOf returns the ordinals held by handle.
func (b *Block) ordinalsOf(handle string) []int {
	var out []int
	for i, a := range b.alloc {
		if a >= 0 && b.attrs[a].Handle == handle {
			out = append(out, i)
		}
	}
	return out
}

// attrIndex returns the index of an equal attribute entry, adding one if
// there is none.
func (b *Block) attrIndex(at Attribute) int32 {
	for i, x := range b.attrs {
		if x.equal(at) {
			return int32(i)
		}
	}
	b.attrs = append(b.attrs, Attribute{Handle: at.Handle, Attrs: maps.Clone(at.Attrs)})
	return int32(len(b.attrs) - 1)
}

// assignNext allocates the first n free ordinals (n <= Free()) to at.
func (b *Block) assignNext(n int, at Attribute) []int {
	idx := b.attrIndex(at)
	out := make([]int, n)
	for i := range n {
		o := b.free[i]
		b.alloc[o] = idx
		out[i] = int(o)
	}
	b.free = slices.Delete(b.free, 0, n)
	b.EmptySince = time.Time{}
	return out
}

// assignOrdinal allocates ord to at. When ord is taken it changes nothing
// and returns its owner and false.
func (b *Block) assignOrdinal(ord int, at Attribute) (Attribute, bool) {
	if b.alloc[ord] >= 0 {
		return b.attrs[b.alloc[ord]], false
	}
	b.alloc[ord] = b.attrIndex(at)
	if i := slices.Index(b.free, int32(ord)); i >= 0 {
		b.free = slices.Delete(b.free, i, i+1)
	}
	b.EmptySince = time.Time{}
	return at, true
}

// release frees the given ordinals, appending them to the back of the free
// list in the order given. It returns how many were released per handle;
// ordinals that were not allocated are skipped.
func (b *Block) release(ords []int, now time.Time) map[string]int {
	byHandle := map[string]int{}
	for _, o := range ords {
		if o < 0 || o >= len(b.alloc) || b.alloc[o] < 0 {
			continue
		}
		byHandle[b.attrs[b.alloc[o]].Handle]++
		b.alloc[o] = -1
		b.free = append(b.free, int32(o))
	}
	if len(byHandle) > 0 {
		b.dropUnusedAttrs()
		if b.Empty() {
			b.EmptySince = now.UTC()
		}
	}
	return byHandle
}

// dropUnusedAttrs removes attribute entries no allocation refers to and
// renumbers the rest.
func (b *Block) dropUnusedAttrs() {
	used := make([]bool, len(b.attrs))
	for _, a := range b.alloc {
		if a >= 0 {
			used[a] = true
		}
	}
	if !slices.Contains(used, false) {
		return
	}
	remap := make([]int32, len(b.attrs))
	kept := b.attrs[:0:0]
	for i, at := range b.attrs {
		remap[i] = -1
		if used[i] {
			remap[i] = int32(len(kept))
			kept = append(kept, at)
		}
	}
	b.attrs = kept
	for i, a := range b.alloc {
		if a >= 0 {
			b.alloc[i] = remap[a]
		}
	}
}

// handleCounts returns how many ordinals each handle holds.
func (b *Block) handleCounts() map[string]int {
	out := map[string]int{}
	for _, a := range b.alloc {
		if a >= 0 {
			out[b.attrs[a].Handle]++
		}
	}
	return out
}

// blockJSON is a block as stored.
type blockJSON struct {
	CIDR        string      `json:"cidr"`
	Affinity    string      `json:"affinity,omitempty"`
	Allocations slots       `json:"allocations"`
	Unallocated []int32     `json:"unallocated"`
	Attributes  []Attribute `json:"attributes"`
	EmptySince  string      `json:"emptySince,omitempty"`
}

// slots is the allocations array: an attribute index per ordinal, null
// when free.
type slots []int32

// MarshalJSON writes -1 as null.
func (s slots) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+5*len(s))
	out = append(out, '[')
	for i, v := range s {
		if i > 0 {
			out = append(out, ',')
		}
		if v < 0 {
			out = append(out, "null"...)
		} else {
			out = strconv.AppendInt(out, int64(v), 10)
		}
	}
	return append(out, ']'), nil
}

// UnmarshalJSON reads null as -1.
func (s *slots) UnmarshalJSON(data []byte) error {
	var raw []*int32
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(slots, len(raw))
	for i, p := range raw {
		out[i] = -1
		if p != nil {
			out[i] = *p
		}
	}
	*s = out
	return nil
}

// MarshalJSON encodes the block as stored.
func (b *Block) MarshalJSON() ([]byte, error) {
	v := blockJSON{CIDR: b.CIDR.String(), Affinity: b.Affinity, Allocations: b.alloc, Unallocated: b.free, Attributes: b.attrs}
	if v.Unallocated == nil {
		v.Unallocated = []int32{}
	}
	if v.Attributes == nil {
		v.Attributes = []Attribute{}
	}
	if !b.EmptySince.IsZero() {
		v.EmptySince = b.EmptySince.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(v)
}

// decodeBlock parses and checks a stored block. A free list that disagrees
// with the allocations is repaired (free ordinals missing from it are
// appended, stray entries dropped), since allocations are the truth.
func decodeBlock(data []byte) (*Block, error) {
	var v blockJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decoding block: %w", err)
	}
	cidr, err := netip.ParsePrefix(v.CIDR)
	if err != nil || cidr.Masked() != cidr {
		return nil, fmt.Errorf("decoding block: bad cidr %q", v.CIDR)
	}
	n := 1 << (addrBits(cidr.Addr()) - cidr.Bits())
	if addrBits(cidr.Addr())-cidr.Bits() > 16 || len(v.Allocations) != n {
		return nil, fmt.Errorf("decoding block %s: %d allocations for %d addresses", cidr, len(v.Allocations), n)
	}
	b := &Block{CIDR: cidr, Affinity: v.Affinity, alloc: v.Allocations, attrs: v.Attributes}
	for i, a := range b.alloc {
		if a >= int32(len(b.attrs)) {
			return nil, fmt.Errorf("decoding block %s: ordinal %d refers to attribute %d of %d", cidr, i, a, len(b.attrs))
		}
	}
	seen := make([]bool, n)
	b.free = make([]int32, 0, len(v.Unallocated))
	for _, o := range v.Unallocated {
		if o >= 0 && int(o) < n && b.alloc[o] < 0 && !seen[o] {
			seen[o] = true
			b.free = append(b.free, o)
		}
	}
	for i, a := range b.alloc {
		if a < 0 && !seen[i] {
			b.free = append(b.free, int32(i))
		}
	}
	if v.EmptySince != "" {
		if b.EmptySince, err = time.Parse(time.RFC3339Nano, v.EmptySince); err != nil {
			return nil, fmt.Errorf("decoding block %s: emptySince: %w", cidr, err)
		}
	}
	return b, nil
}

// handleRecord is a handle as stored, {"<block cidr>": <count>, ...}: how
// many addresses it holds in each block, so that releasing a handle reads
// only its blocks.
type handleRecord struct {
	Blocks map[string]int
}

// MarshalJSON writes the record as the plain map.
func (h handleRecord) MarshalJSON() ([]byte, error) {
	if h.Blocks == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(h.Blocks)
}

func decodeHandle(data []byte) (handleRecord, error) {
	h := handleRecord{Blocks: map[string]int{}}
	if err := json.Unmarshal(data, &h.Blocks); err != nil {
		return handleRecord{}, fmt.Errorf("decoding handle: %w", err)
	}
	if h.Blocks == nil {
		h.Blocks = map[string]int{}
	}
	return h, nil
}

// affinity states. Calyx writes a claim's block and its pending affinity
// in one transaction and confirms the affinity with the next write to the
// block; pendingDeletion is understood (a Calico-style two-step release
// interrupted half way) but never left behind by Calyx, which deletes an
// affinity in the same transaction that frees or deletes its block.
const (
	statePending         = api.AffinityPending
	stateConfirmed       = api.AffinityConfirmed
	statePendingDeletion = api.AffinityPendingDeletion
)

type affinityRecord struct {
	State string `json:"state"`
}

func affinityValue(state string) []byte {
	b, _ := json.Marshal(affinityRecord{State: state}) // cannot fail
	return b
}

func decodeAffinity(data []byte) string {
	var a affinityRecord
	if json.Unmarshal(data, &a) != nil {
		return ""
	}
	return a.State
}
