package ipam

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/datastore"
)

// Assignment says who holds an address.
type Assignment struct {
	IP       netip.Addr
	Pool     string
	PoolCIDR netip.Prefix
	// Block is the address's block; Block.IsValid() is false when no
	// block holds it yet.
	Block netip.Prefix
	// Node is the node the block is affine to ("" for none).
	Node      string
	Allocated bool
	Handle    string
	Attrs     map[string]string
}

// GetAssignment returns who holds ip, if anyone. An address outside every
// pool is an error (IsNotInPool).
func (a *Allocator) GetAssignment(ctx context.Context, ip netip.Addr) (Assignment, error) {
	what := fmt.Sprintf("looking up %s", ip)
	ip = ip.Unmap()
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{{Key: poolsPrefix(), Prefix: true}})
	if err != nil {
		return Assignment{}, fmt.Errorf("%s: %w", what, err)
	}
	pl := poolFor(decodePools(res[0]), ip)
	if pl == nil {
		return Assignment{}, fmt.Errorf("%s: %w", what, notInPool(ip))
	}
	out := Assignment{IP: ip, Pool: pl.name, PoolCIDR: pl.cidr()}
	cidr := pl.geo.blockOf(ip)
	blocks, err := a.readBlocks(ctx, []netip.Prefix{cidr})
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	b := blocks[cidr].b
	if b == nil {
		return out, nil
	}
	out.Block, out.Node = b.CIDR, b.affineNode()
	o, _ := b.Ordinal(ip)
	if at, ok := b.Owner(o); ok {
		out.Allocated, out.Handle, out.Attrs = true, at.Handle, maps.Clone(at.Attrs)
	}
	return out, nil
}

// IPsByHandle returns the addresses a handle holds, sorted. A handle that
// does not exist is an error (IsNotFound).
func (a *Allocator) IPsByHandle(ctx context.Context, handle string) ([]netip.Addr, error) {
	what := fmt.Sprintf("looking up handle %q", handle)
	if err := checkName("handle", handle); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	hs, err := a.readHandles(ctx, []string{handle})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	h := hs[handle]
	if h.rev == 0 {
		return nil, fmt.Errorf("%s: %w", what, notFoundf("handle %q holds no address", handle))
	}
	var cidrs []netip.Prefix
	for s := range h.rec.Blocks {
		if c, err := netip.ParsePrefix(s); err == nil {
			cidrs = append(cidrs, c)
		}
	}
	blocks, err := a.readBlocks(ctx, cidrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var out []netip.Addr
	for _, rb := range blocks {
		if rb.b != nil {
			for _, o := range rb.b.ordinalsOf(handle) {
				out = append(out, rb.b.Addr(o))
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// Usage is how much of the pools is used, overall and per node.
type Usage struct {
	Pools  []PoolUsage
	Nodes  []NodeUsage
	Blocks []BlockUsage
}

// PoolUsage is one pool's utilisation.
type PoolUsage struct {
	Name      string
	CIDR      netip.Prefix
	BlockSize int // prefix length of its blocks
	Disabled  bool
	Size      *big.Int // addresses in the pool
	Blocks    int      // blocks that exist
	Capacity  int      // addresses in those blocks
	InUse     int      // addresses allocated
}

// NodeUsage is one node's share.
type NodeUsage struct {
	Node     string
	Blocks   int // blocks affine to it
	Capacity int // addresses in them
	InUse    int // addresses allocated in them (by anyone)
	// Borrowed is how many addresses allocated for the node (attribute
	// "node") are in blocks that are not its own.
	Borrowed int
}

// BlockUsage is one block's utilisation.
type BlockUsage struct {
	CIDR  netip.Prefix
	Pool  string // "" when no pool holds it any more
	Node  string // affinity, "" for none
	Size  int
	InUse int
	// Tunnel is how many of InUse are hosts' VXLAN tunnel addresses
	// (AttrType AttrTypeTunnel), which calyx-node allocates and releases
	// by itself.
	Tunnel int
}

// The allocation attribute that says what an address is for, and its
// value for a host's VXLAN tunnel address.
const (
	AttrType       = "type"
	AttrTypeTunnel = "vxlanTunnelAddress"
)

// Usage reads every pool and block (one round trip) and sums them up.
func (a *Allocator) Usage(ctx context.Context) (Usage, error) {
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{
		{Key: poolsPrefix(), Prefix: true},
		{Key: blockPrefix, Prefix: true},
	})
	if err != nil {
		return Usage{}, fmt.Errorf("reading IPAM usage: %w", err)
	}
	pools := decodePools(res[0])
	var blocks []*Block
	for _, kv := range res[1] {
		if b, err := decodeBlock(kv.Value); err == nil {
			blocks = append(blocks, b)
		}
	}
	return usageOf(pools, blocks), nil
}

// usageOf computes the usage of blocks in pools.
func usageOf(pools []*pool, blocks []*Block) Usage {
	var u Usage
	byPool := map[string]*PoolUsage{}
	for _, p := range pools {
		size := new(big.Int).Lsh(big.NewInt(1), uint(addrBits(p.cidr().Addr())-p.cidr().Bits()))
		u.Pools = append(u.Pools, PoolUsage{Name: p.name, CIDR: p.cidr(), BlockSize: p.geo.blockBits, Disabled: p.disabled, Size: size})
	}
	for i := range u.Pools {
		byPool[u.Pools[i].Name] = &u.Pools[i]
	}
	nodes := map[string]*NodeUsage{}
	nodeOf := func(n string) *NodeUsage {
		if nodes[n] == nil {
			nodes[n] = &NodeUsage{Node: n}
		}
		return nodes[n]
	}
	for _, b := range blocks {
		bu := BlockUsage{CIDR: b.CIDR, Node: b.affineNode(), Size: b.Size(), InUse: b.InUse()}
		for _, o := range b.Allocated() {
			if at, ok := b.Owner(o); ok && at.Attrs[AttrType] == AttrTypeTunnel {
				bu.Tunnel++
			}
		}
		if p := poolFor(pools, b.CIDR.Addr()); p != nil {
			bu.Pool = p.name
			pu := byPool[p.name]
			pu.Blocks++
			pu.Capacity += b.Size()
			pu.InUse += b.InUse()
		}
		if bu.Node != "" {
			nu := nodeOf(bu.Node)
			nu.Blocks++
			nu.Capacity += b.Size()
			nu.InUse += b.InUse()
		}
		for _, o := range b.Allocated() {
			at, _ := b.Owner(o)
			if n := at.Attrs["node"]; n != "" && n != bu.Node {
				nodeOf(n).Borrowed++
			}
		}
		u.Blocks = append(u.Blocks, bu)
	}
	for _, n := range nodes {
		u.Nodes = append(u.Nodes, *n)
	}
	slices.SortFunc(u.Nodes, func(x, y NodeUsage) int { return strings.Compare(x.Node, y.Node) })
	slices.SortFunc(u.Blocks, func(x, y BlockUsage) int {
		return cmp.Or(strings.Compare(x.Pool, y.Pool), comparePrefix(x.CIDR, y.CIDR))
	})
	return u
}
