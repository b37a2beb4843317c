package ipam

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"slices"
)

// Block arithmetic. A pool of prefix length P cut into blocks of length B
// has 2^(B-P) blocks, numbered from 0 at the pool's first address. An IPv6
// pool can have far more blocks than fit in 64 bits (a /48 of /122 blocks
// has 2^74), so block numbers are 128-bit. Nothing here enumerates blocks:
// finding a free one works on the sorted list of existing ones.

// u128 is an unsigned 128-bit integer.
type u128 struct{ hi, lo uint64 }

func (x u128) add(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	return u128{x.hi + y.hi + c, lo}
}

func (x u128) sub(y u128) u128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	return u128{x.hi - y.hi - b, lo}
}

func (x u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{x.lo << (n - 64), 0}
	}
	return u128{x.hi<<n | x.lo>>(64-n), x.lo << n}
}

func (x u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{0, x.hi >> (n - 64)}
	}
	return u128{x.hi >> n, x.lo>>n | x.hi<<(64-n)}
}

func (x u128) cmp(y u128) int {
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	return cmp.Compare(x.lo, y.lo)
}

func addrU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func u128Addr(v u128, is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

// addrBits is 32 or 128.
func addrBits(a netip.Addr) int { return a.BitLen() }

// geometry is a pool cut into blocks.
type geometry struct {
	pool      netip.Prefix // masked
	blockBits int          // the blocks' prefix length
}

func newGeometry(pool netip.Prefix, blockBits int) (geometry, bool) {
	pool = pool.Masked()
	if !pool.IsValid() || blockBits < pool.Bits() || blockBits > addrBits(pool.Addr()) || blockBits-pool.Bits() >= 128 {
		return geometry{}, false
	}
	return geometry{pool: pool, blockBits: blockBits}, true
}

// hostBits is the number of address bits inside a block.
func (g geometry) hostBits() uint { return uint(addrBits(g.pool.Addr()) - g.blockBits) }

// countBits is log2 of the number of blocks.
func (g geometry) countBits() uint { return uint(g.blockBits - g.pool.Bits()) }

// count returns the number of blocks (below 2^128 by construction).
func (g geometry) count() u128 { return u128{0, 1}.shl(g.countBits()) }

// blockOf returns the block holding a, which must be in the pool.
func (g geometry) blockOf(a netip.Addr) netip.Prefix {
	p, _ := a.Prefix(g.blockBits)
	return p
}

// index returns the number of block b (a block of this pool).
func (g geometry) index(b netip.Prefix) u128 {
	return addrU128(b.Addr()).sub(addrU128(g.pool.Addr())).shr(g.hostBits())
}

// at returns block number i.
func (g geometry) at(i u128) netip.Prefix {
	a := u128Addr(addrU128(g.pool.Addr()).add(i.shl(g.hostBits())), g.pool.Addr().Is4())
	return netip.PrefixFrom(a, g.blockBits)
}

// isBlock reports whether p is exactly one of the pool's blocks.
func (g geometry) isBlock(p netip.Prefix) bool {
	return p.Bits() == g.blockBits && p.Addr().BitLen() == g.pool.Addr().BitLen() && g.pool.Contains(p.Addr()) && p.Masked() == p
}

// startIndex is where node starts looking for a free block: FNV-1a of its
// name modulo the number of blocks, as Calico does, so that hosts starting
// together spread over the pool instead of all racing for block 0.
func (g geometry) startIndex(node string) u128 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	s := u128{0, uint64(h.Sum32())}
	if g.countBits() >= 32 {
		return s
	}
	return u128{0, s.lo & (1<<g.countBits() - 1)}
}

// firstFree returns the first block number at or after start, wrapping
// past the last block to 0, that is not in taken. taken must be sorted and
// hold only numbers below g.count(). It reports false when every block is
// taken.
func (g geometry) firstFree(taken []u128, start u128) (u128, bool) {
	n := g.count()
	i, _ := slices.BinarySearchFunc(taken, start, u128.cmp)
	c := start
	for ; i < len(taken) && taken[i] == c; i++ {
		c = c.add(u128{0, 1})
	}
	if c.cmp(n) < 0 {
		return c, true
	}
	c = u128{}
	for i = 0; i < len(taken) && taken[i] == c; i++ {
		c = c.add(u128{0, 1})
	}
	return c, c.cmp(start) < 0
}

// insertSorted adds v to the sorted list s if it is not there yet.
func insertSorted(s []u128, v u128) []u128 {
	i, found := slices.BinarySearchFunc(s, v, u128.cmp)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}
