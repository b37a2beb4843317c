package ipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
)

// Store is the part of the datastore the allocator uses: several reads in
// one round trip, and a compare-and-swap that returns the current state of
// its guarded keys when it fails. *datastore.Client satisfies it.
type Store interface {
	ReadRanges(ctx context.Context, ranges []datastore.RawRange) ([][]datastore.RawKV, int64, error)
	CASRead(ctx context.Context, conds []datastore.Cond, puts []datastore.RawPut, deletes []string) (bool, int64, []datastore.RawKV, error)
}

var _ Store = (*datastore.Client)(nil)

// Defaults of the options.
const (
	// DefaultMaxAttempts bounds every compare-and-swap loop, as Calico's
	// datastoreRetries does.
	DefaultMaxAttempts = 100
	// DefaultRefreshInterval is how long a node's view of the pools, the
	// IPAM settings and its own labels and affinities is used before it is
	// read again. Writes are guarded by the revisions of what they depend
	// on, so a stale view costs a retry, never a wrong allocation; the
	// refresh only lets a newly created pool be noticed.
	DefaultRefreshInterval = 10 * time.Second
	// readChunk keeps each ReadRanges within etcd's default --max-txn-ops.
	readChunk = 100
)

// Option configures an Allocator.
type Option func(*Allocator)

// WithLogger sets where the allocator logs repairs and retries.
func WithLogger(l *slog.Logger) Option { return func(a *Allocator) { a.log = l } }

// WithClock sets the clock used to stamp blocks that become empty (default
// time.Now). ReleaseEmptyBlocks takes its own now.
func WithClock(now func() time.Time) Option { return func(a *Allocator) { a.now = now } }

// WithMaxAttempts bounds the compare-and-swap attempts of one operation.
func WithMaxAttempts(n int) Option { return func(a *Allocator) { a.attempts = max(n, 1) } }

// WithRefreshInterval sets how long a node's view is used before it is
// read again; 0 reads it before every operation.
func WithRefreshInterval(d time.Duration) Option { return func(a *Allocator) { a.refresh = d } }

// Allocator hands out addresses from IP pools in blocks affine to nodes.
// It is safe for concurrent use. Operations on one node are serialised
// (Calico serialises them with a host-wide file lock): they almost always
// touch the same block, so running them in parallel would only make them
// retry each other.
type Allocator struct {
	store    Store
	log      *slog.Logger
	now      func() time.Time
	attempts int
	refresh  time.Duration

	mu    sync.Mutex // guards the two maps below; never held across I/O
	nodes map[string]*nodeState
	owner map[netip.Prefix]*nodeState // which node's cache holds a block

	stats counters
}

type counters struct {
	allocated, released, claims, borrowed, retries atomic.Uint64
}

// Stats counts the allocator's work since New.
type Stats struct {
	Allocated uint64 // addresses assigned
	Released  uint64 // addresses released
	Claims    uint64 // blocks claimed
	Borrowed  uint64 // addresses assigned from other nodes' blocks
	// Retries counts compare-and-swap attempts refused because a guarded
	// key had changed since it was read (each costs one more round trip).
	Retries uint64
}

// New returns an allocator over store.
func New(store Store, opts ...Option) *Allocator {
	a := &Allocator{
		store:    store,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
		attempts: DefaultMaxAttempts,
		refresh:  DefaultRefreshInterval,
		nodes:    map[string]*nodeState{},
		owner:    map[netip.Prefix]*nodeState{},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Stats returns the counters.
func (a *Allocator) Stats() Stats {
	return Stats{
		Allocated: a.stats.allocated.Load(),
		Released:  a.stats.released.Load(),
		Claims:    a.stats.claims.Load(),
		Borrowed:  a.stats.borrowed.Load(),
		Retries:   a.stats.retries.Load(),
	}
}

// nodeState is what the allocator knows about one node: its view of the
// pools and settings, and a cache of the blocks affine to it with their
// revisions. calyx-node is the only writer of its own blocks, so the cache
// is almost always current and an allocation is one compare-and-swap with
// no read before it; when it is not, the failed CAS returns the current
// values and the allocation retries at once.
//
// Lock order: a goroutine holding a nodeState's mu never takes another
// nodeState's mu (it reads other nodes' blocks from etcd instead); a.mu is
// taken last and held only briefly.
type nodeState struct {
	name string

	mu     nodeLock // guards following fields; held for a whole operation on the node
	view   *view
	blocks map[netip.Prefix]*ownBlock

	queueMu sync.Mutex   // guards queue
	queue   []*assignReq // AutoAssign requests waiting for a batch

	lateMu sync.Mutex // guards late
	// late holds the blocks written outside the node's lock while another
	// operation held it (see learn); the next holder applies them.
	late map[netip.Prefix]lateBlock
}

// lateBlock is a block learnt while its node's lock was out of reach (b
// nil: deleted).
type lateBlock struct {
	b   *Block
	rev int64
}

// view is a node's picture of the configuration.
type view struct {
	pools    []*pool
	settings settings
	labels   map[string]string
	nodeRev  int64
	readAt   time.Time
	stale    bool // a guarded write found something changed
}

// ownBlock is a cached block affine to the node. b is never modified:
// writers clone it.
type ownBlock struct {
	b        *Block
	rev      int64
	affState string // "" when the affinity key is missing
	affRev   int64
}

func (a *Allocator) node(name string) *nodeState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.nodes[name]
	if st == nil {
		st = &nodeState{name: name, mu: newNodeLock(), blocks: map[netip.Prefix]*ownBlock{}, late: map[netip.Prefix]lateBlock{}}
		a.nodes[name] = st
	}
	return st
}

// nodeLock is a mutex whose holder may be waiting on etcd, so that a
// waiter must be able to give up when its context ends: otherwise, while
// etcd is down, requests would queue behind each other far beyond their
// deadlines. Operations take it with lockNode; the node's cache, which
// callers holding no node lock also use (cachedBlock, learn), is only ever
// tried (tryLock), never waited for.
type nodeLock chan struct{}

func newNodeLock() nodeLock { return make(nodeLock, 1) }

// Lock waits for the lock however long it takes. Only calyxctl's
// operations on whole nodes (forgetNode) use it: no request of calyx-node
// waits on it.
func (l nodeLock) Lock() { l <- struct{}{} }

// lockCtx waits for the lock until ctx ends.
func (l nodeLock) lockCtx(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another IPAM operation on this node: %w", context.Cause(ctx))
	}
}

// tryLock takes the lock if it is free, and reports whether it did.
func (l nodeLock) tryLock() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l nodeLock) Unlock() { <-l }

// lockNode waits for the node's lock until ctx ends, then applies what
// was learnt while others held it.
func (a *Allocator) lockNode(ctx context.Context, st *nodeState) error {
	if err := st.mu.lockCtx(ctx); err != nil {
		return err
	}
	a.applyLate(st)
	return nil
}

func (a *Allocator) putOwn(st *nodeState, ob *ownBlock) {
	st.blocks[ob.b.CIDR] = ob
	a.mu.Lock()
	a.owner[ob.b.CIDR] = st
	a.mu.Unlock()
}

func (a *Allocator) dropOwn(st *nodeState, cidr netip.Prefix) {
	delete(st.blocks, cidr)
	a.mu.Lock()
	if a.owner[cidr] == st {
		delete(a.owner, cidr)
	}
	a.mu.Unlock()
}

// forgetNode drops everything cached about a node.
func (a *Allocator) forgetNode(name string) {
	a.mu.Lock()
	st := a.nodes[name]
	a.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lateMu.Lock()
	clear(st.late)
	st.lateMu.Unlock()
	for cidr := range st.blocks {
		a.dropOwn(st, cidr)
	}
	st.view = nil
}

// cachedBlock returns a block from the cache of the local node it is
// affine to. Callers must hold no nodeState lock. While another operation
// holds the node's lock (perhaps waiting on an etcd that is down) the
// block counts as not cached: the caller reads it from etcd, under its own
// deadline, rather than wait for the cache.
func (a *Allocator) cachedBlock(cidr netip.Prefix) (*Block, int64, bool) {
	a.mu.Lock()
	st := a.owner[cidr]
	a.mu.Unlock()
	if st == nil || !st.mu.tryLock() {
		return nil, 0, false
	}
	defer st.mu.Unlock()
	a.applyLate(st)
	if ob := st.blocks[cidr]; ob != nil {
		return ob.b, ob.rev, true
	}
	return nil, 0, false
}

// learn records a block written outside its node's lock (b nil: deleted)
// in the cache of the local node it is affine to. Callers must hold no
// nodeState lock. It never waits for the node's lock: when another
// operation holds it, the block is kept aside and applied by the next
// holder (lockNode). Until then the cache may be stale, which every
// compare-and-swap guards against anyway.
func (a *Allocator) learn(cidr netip.Prefix, b *Block, rev int64) {
	a.mu.Lock()
	st := a.owner[cidr]
	a.mu.Unlock()
	if st == nil {
		return
	}
	st.lateMu.Lock()
	if l, ok := st.late[cidr]; !ok || l.rev < rev {
		st.late[cidr] = lateBlock{b: b, rev: rev}
	}
	st.lateMu.Unlock()
	if !st.mu.tryLock() {
		return
	}
	defer st.mu.Unlock()
	a.applyLate(st)
}

// applyLate applies the blocks learnt outside the node's lock, which the
// caller holds.
func (a *Allocator) applyLate(st *nodeState) {
	st.lateMu.Lock()
	late := st.late
	if len(late) > 0 {
		st.late = map[netip.Prefix]lateBlock{}
	}
	st.lateMu.Unlock()
	for cidr, l := range late {
		ob := st.blocks[cidr]
		switch {
		case ob == nil || ob.rev >= l.rev:
		case l.b == nil || l.b.affineNode() != st.name:
			a.dropOwn(st, cidr)
		default:
			st.blocks[cidr] = &ownBlock{b: l.b, rev: l.rev, affState: ob.affState, affRev: ob.affRev}
		}
	}
}

// ensureView loads the node's view when it has none, when it is stale or
// older than the refresh interval, or when force is set.
func (a *Allocator) ensureView(ctx context.Context, st *nodeState, force bool) error {
	if !force && st.view != nil && !st.view.stale && a.now().Sub(st.view.readAt) < a.refresh {
		return nil
	}
	return a.loadNode(ctx, st)
}

// loadNode reads, in one round trip, the pools, the IPAM settings, the
// node and its affinities; then the blocks of affinities it has not
// cached. An affinity whose block is missing or affine to another node
// (a claim that lost, or a release cut short) is deleted.
func (a *Allocator) loadNode(ctx context.Context, st *nodeState) error {
	res, _, err := a.store.ReadRanges(ctx, []datastore.RawRange{
		{Key: poolsPrefix(), Prefix: true},
		{Key: settingsKey()},
		{Key: nodeKey(st.name)},
		{Key: affinityPrefix + st.name + "/", Prefix: true},
	})
	if err != nil {
		return fmt.Errorf("reading IP pools and the affinities of node %q: %w", st.name, err)
	}
	v := &view{pools: decodePools(res[0]), settings: decodeSettings(res[1]), readAt: a.now()}
	v.labels, v.nodeRev = decodeNodeLabels(res[2])
	affs := map[netip.Prefix]datastore.RawKV{}
	for _, kv := range res[3] {
		if n, cidr, ok := affinityFromKey(kv.Key); ok && n == st.name {
			affs[cidr] = kv
		}
	}
	for cidr := range st.blocks {
		if _, ok := affs[cidr]; !ok {
			a.dropOwn(st, cidr)
		}
	}
	var need []netip.Prefix
	for cidr, kv := range affs {
		if ob := st.blocks[cidr]; ob != nil {
			ob.affState, ob.affRev = decodeAffinity(kv.Value), kv.ModRevision
		} else {
			need = append(need, cidr)
		}
	}
	slices.SortFunc(need, comparePrefix)
	blocks, err := a.readBlocks(ctx, need)
	if err != nil {
		return err
	}
	for _, cidr := range need {
		kv := affs[cidr]
		rb := blocks[cidr]
		if rb.b == nil || rb.b.affineNode() != st.name {
			a.removeStaleAffinity(ctx, kv)
			continue
		}
		ob := &ownBlock{b: rb.b, rev: rb.rev, affState: decodeAffinity(kv.Value), affRev: kv.ModRevision}
		a.putOwn(st, ob)
		if ob.affState != stateConfirmed {
			a.confirm(ctx, st.name, ob)
		}
	}
	st.view = v
	return nil
}

// confirm confirms the affinity of one of the node's blocks (a claim whose
// confirmation was lost), guarded by the block and the affinity being as
// read. Failure is logged: the next allocation from the block confirms it.
func (a *Allocator) confirm(ctx context.Context, node string, ob *ownBlock) {
	key := AffinityKey(node, ob.b.CIDR)
	t := newTxn()
	t.guard(BlockKey(ob.b.CIDR), ob.rev)
	t.guard(key, ob.affRev)
	t.put(key, affinityValue(stateConfirmed))
	ok, rev, _, err := a.commit(ctx, t)
	switch {
	case err != nil:
		a.log.Warn("confirming block affinity", "key", key, "err", err)
	case ok:
		ob.affState, ob.affRev = stateConfirmed, rev
	}
}

// removeStaleAffinity deletes an affinity whose block is missing or not
// the node's, if it is still as read.
func (a *Allocator) removeStaleAffinity(ctx context.Context, kv datastore.RawKV) {
	ok, _, _, err := a.store.CASRead(ctx, []datastore.Cond{{Key: kv.Key, ModRevision: kv.ModRevision}}, nil, []string{kv.Key})
	switch {
	case err != nil:
		a.log.Warn("removing stale block affinity", "key", kv.Key, "err", err)
	case ok:
		a.log.Info("removed stale block affinity: its block is missing or another node's", "key", kv.Key)
	}
}

// readBlock is a block read from etcd (b nil: missing).
type readBlock struct {
	b   *Block
	rev int64
}

// readBlocks reads blocks by CIDR, up to readChunk per round trip. A block
// that does not decode is reported as an error naming it.
func (a *Allocator) readBlocks(ctx context.Context, cidrs []netip.Prefix) (map[netip.Prefix]readBlock, error) {
	out := make(map[netip.Prefix]readBlock, len(cidrs))
	for chunk := range slices.Chunk(cidrs, readChunk) {
		ranges := make([]datastore.RawRange, len(chunk))
		for i, c := range chunk {
			ranges[i] = datastore.RawRange{Key: BlockKey(c)}
		}
		res, _, err := a.store.ReadRanges(ctx, ranges)
		if err != nil {
			return nil, fmt.Errorf("reading %d blocks: %w", len(chunk), err)
		}
		for i, c := range chunk {
			if len(res[i]) == 0 {
				out[c] = readBlock{}
				continue
			}
			b, err := decodeBlock(res[i][0].Value)
			if err != nil {
				return nil, fmt.Errorf("reading block %s: %w", c, err)
			}
			out[c] = readBlock{b: b, rev: res[i][0].ModRevision}
		}
	}
	return out, nil
}

// readBlocksCached is readBlocks preferring the local nodes' caches. The
// cache may be stale; the CAS that follows finds out. Callers must hold no
// nodeState lock.
func (a *Allocator) readBlocksCached(ctx context.Context, cidrs []netip.Prefix) (map[netip.Prefix]readBlock, error) {
	out := make(map[netip.Prefix]readBlock, len(cidrs))
	var miss []netip.Prefix
	for _, c := range cidrs {
		if b, rev, ok := a.cachedBlock(c); ok {
			out[c] = readBlock{b: b, rev: rev}
		} else {
			miss = append(miss, c)
		}
	}
	read, err := a.readBlocks(ctx, miss)
	if err != nil {
		return nil, err
	}
	for c, rb := range read {
		out[c] = rb
	}
	return out, nil
}

func comparePrefix(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}

// txn collects the guards and writes of one compare-and-swap.
type txn struct {
	conds   []datastore.Cond
	puts    []datastore.RawPut
	dels    []string
	guarded map[string]bool
}

func newTxn() *txn { return &txn{guarded: map[string]bool{}} }

// guard requires key to be at rev (0: missing); a key is guarded once.
func (t *txn) guard(key string, rev int64) {
	if t.guarded[key] {
		return
	}
	t.guarded[key] = true
	t.conds = append(t.conds, datastore.Cond{Key: key, ModRevision: rev})
}

func (t *txn) put(key string, value []byte) {
	t.puts = append(t.puts, datastore.RawPut{Key: key, Value: value})
}

func (t *txn) del(key string) { t.dels = append(t.dels, key) }

// commit runs the transaction. When a guard fails it returns the keys
// that changed (Value nil: now missing) and counts a retry.
func (a *Allocator) commit(ctx context.Context, t *txn) (bool, int64, map[string]datastore.RawKV, error) {
	ok, rev, cur, err := a.store.CASRead(ctx, t.conds, t.puts, t.dels)
	if err != nil || ok {
		return ok, rev, nil, err
	}
	a.stats.retries.Add(1)
	changed := map[string]datastore.RawKV{}
	for i, kv := range cur {
		if kv.ModRevision != t.conds[i].ModRevision {
			changed[kv.Key] = kv
		}
	}
	return false, rev, changed, nil
}

// absorb updates a node's cache and view from the keys a failed
// compare-and-swap found changed: its blocks and affinities are replaced
// by their current values; a change to a pool, the settings or the node
// marks the view stale.
func (a *Allocator) absorb(st *nodeState, changed map[string]datastore.RawKV) {
	for key, kv := range changed {
		if cidr, ok := blockFromKey(key); ok {
			a.absorbBlock(st, cidr, kv)
			continue
		}
		if n, cidr, ok := affinityFromKey(key); ok {
			if ob := st.blocks[cidr]; ob != nil && n == st.name {
				ob.affState, ob.affRev = decodeAffinity(kv.Value), kv.ModRevision
			}
			continue
		}
		if _, ok := cutHandle(key); ok {
			continue
		}
		if st.view != nil {
			st.view.stale = true
		}
	}
}

func (a *Allocator) absorbBlock(st *nodeState, cidr netip.Prefix, kv datastore.RawKV) {
	if kv.Value == nil {
		a.dropOwn(st, cidr)
		return
	}
	b, err := decodeBlock(kv.Value)
	if err != nil || b.affineNode() != st.name {
		a.dropOwn(st, cidr)
		return
	}
	ob := &ownBlock{b: b, rev: kv.ModRevision}
	if old := st.blocks[cidr]; old != nil {
		ob.affState, ob.affRev = old.affState, old.affRev
	}
	a.putOwn(st, ob)
}

// absorbRead caches a block of the node just read from etcd.
func (a *Allocator) absorbRead(st *nodeState, rb readBlock) {
	ob := &ownBlock{b: rb.b, rev: rb.rev}
	if old := st.blocks[rb.b.CIDR]; old != nil {
		ob.affState, ob.affRev = old.affState, old.affRev
	}
	a.putOwn(st, ob)
}

func cutHandle(key string) (string, bool) {
	if len(key) > len(handlePrefix) && key[:len(handlePrefix)] == handlePrefix {
		return key[len(handlePrefix):], true
	}
	return "", false
}

// handleState is a handle as last read: rev 0 means it does not exist.
type handleState struct {
	rec handleRecord
	rev int64
}

// fromKV updates the state from a read or a failed CAS.
func (h *handleState) fromKV(kv datastore.RawKV) error {
	h.rev = kv.ModRevision
	h.rec = handleRecord{Blocks: map[string]int{}}
	if kv.Value == nil {
		h.rev = 0
		return nil
	}
	rec, err := decodeHandle(kv.Value)
	if err != nil {
		return err
	}
	h.rec = rec
	return nil
}
