// Package ipam hands out container addresses from IP pools, across every
// host, without duplicates, quickly, and without leaks.
//
// Why it looks like this. Every calyx-node allocates addresses for its
// containers, concurrently with every other node, and etcd is the only
// shared state. A single allocation counter or bitmap per pool would make
// all nodes fight over one key (raw etcd compare-and-swap on one key
// collapses to about 220 allocations/s with 14 retries each at 32
// contenders). So, as in Calico, a pool is cut into blocks (the pool's
// blockSize, /26 by default) and each node claims blocks for itself and
// allocates from them: nodes almost never write the same key, and each
// block is also one route. Calico's known weaknesses (reference
// calico-design.md §3.5) are designed out:
//
//   - A leak between "block written" and "handle written" (calico#5203)
//     cannot happen: an allocation writes its blocks and its handle in ONE
//     etcd transaction, guarded by the revisions of every key it read, and
//     so does every release. A request gets all its addresses or none.
//   - Finding a free block never reads blocks one at a time (Calico took 74
//     s for 1,284 blocks): one keys-only range read lists the pool's
//     blocks, and the node takes the first free one after an offset seeded
//     by its name (FNV-1a, as Calico), so nodes starting together spread.
//   - Bootstrap races ("already claimed" with 40 hosts): a claim creates
//     the block with the node's affinity and writes the affinity "pending"
//     in one transaction guarded by "the block does not exist". The create
//     is the arbiter; a loser simply tries the next free block. The next
//     write to the block confirms the affinity. A claim whose answer was
//     lost (a cut connection) is found again through the node's affinities
//     by its next claim or load and used and confirmed, not left idle; an
//     affinity whose block is missing or another node's is deleted then.
//     Fix confirms or deletes whatever is left.
//   - Speed: calyx-node is the only writer of its own blocks, so the
//     allocator caches them with their revisions and serialises each
//     node's requests (Calico used a host-wide flock). The common
//     allocation is exactly one round trip, the compare-and-swap, with no
//     read before it. When a guard fails, the same transaction returns the
//     current values of the guarded keys (datastore.CASRead), so the retry
//     needs no extra read either. Retries are bounded (100) and counted
//     (Stats).
//   - Idempotence: the handle (CNI: <network>.<containerID>.<ifname>,
//     Docker: the endpoint ID) is the owner. AutoAssign for a handle that
//     already holds addresses returns them, which is what makes retrying
//     after an ambiguous error (a cut connection) safe.
//
// Keys live under /calyx/ipam/v1/ (datastore.IPAMPrefix), values are JSON:
//
//	block/10.65.0.64-26          {"cidr", "affinity": "host:<node>"|"", "allocations": [attr index|null, ...],
//	                              "unallocated": [free ordinals, FIFO], "attributes": [{"handle","attrs"}],
//	                              "emptySince": RFC 3339 time, while empty}
//	affinity/<node>/10.65.0.64-26 {"state": "pending"|"confirmed"|"pendingDeletion"}
//	handle/<handle>              {"10.65.0.64/26": <count>, ...}
//
// A CIDR in a key is written with '/' as '-' and ':' as '_' (fd65::40/122
// is block/fd65__40-122): neither character occurs in an address, so the
// escaping is reversible, and the key stays readable.
//
// Allocation takes free ordinals from the front of the block's FIFO and
// release appends them to the back, so a released address is the last to
// be reused. Attributes are de-duplicated per block. A node that can claim
// no block (the pool is full, maxBlocksPerHost is reached, or
// autoAllocateBlocks is off) borrows from other nodes' blocks unless
// strictAffinity is set. Every allocation's transaction is also guarded by
// its pool's revision, so disabling or deleting a pool stops allocations
// from it at once even though nodes cache the pools; a disabled pool keeps
// its allocations. Pools are chosen from the requested ones (by name or
// exact CIDR) or, by default, every enabled pool allowing workloads whose
// nodeSelector matches the node's labels (then the Node's revision guards
// the write too). Empty blocks give up their affinity after a grace period
// (ReleaseEmptyBlocks, called periodically by calyx-node); Check reports
// the problem classes of calicoctl ipam check and Fix repairs them.
//
// The allocation logic (block math, the ordinal FIFO, choosing a block,
// the check report) is pure and separate from the etcd I/O: Block,
// geometry, selectPools and buildReport take no context and read no
// clock; the allocator passes time in.
package ipam
