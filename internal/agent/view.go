package agent

import (
	"context"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// view is calyx-node's in-memory copy of the datastore, fed by the syncer:
// every resource of the kinds calc needs, every node's endpoints included.
// The reconcile loop drains its changes into calc; the local API reads
// this node's endpoints, the pools and the profiles from it.
//
// It also holds an overlay of this node's own endpoint writes. A write is
// visible at once (a READY right after an ADD finds its endpoint), while
// the syncer delivers the same change a moment later; the overlay entry
// is dropped when the syncer has caught up with it, judged by etcd
// revisions, so a stale event can never resurrect a deleted endpoint or
// undo a newer write. The reconcile loop therefore always programs the
// newest state this node knows.
//
// Every change bumps a sequence number. The loop reports the number it has
// programmed up to, so a caller that changed the view (or touched an
// endpoint) can wait until the kernel reflects the change.
type view struct {
	node string
	now  func() time.Time

	mu     sync.Mutex // guards the following fields
	synced bool       // a snapshot was delivered
	// needAff says block affinities come from a second syncer (see
	// affinityFeed), whose snapshot readiness waits for too; affSynced
	// says it arrived.
	needAff, affSynced bool
	res                map[resKey]api.Resource
	pools              map[string]netip.Prefix // parsed IPPool CIDRs, by pool name
	local              map[string]overlayEntry
	pending            []pendingWrite // own writes the syncer has not delivered yet
	// dirty names the resources changed since the loop last drained;
	// reload says a snapshot replaced everything; touched names the
	// endpoints READY asked to program again.
	dirty   map[resKey]struct{}
	touched map[string]struct{}
	reload  bool
	seq     uint64

	changed  chan struct{}  // receives a token when anything changes
	subs     []subscription // other watchers (subscribe)
	syncedCh chan struct{}  // closed on the first snapshot
}

// resKey identifies a resource.
type resKey struct{ kind, name string }

// change is one resource's new value (nil: deleted), drained by the loop.
type change struct {
	kind, name string
	res        api.Resource
}

// overlayEntry is one of this node's own writes.
type overlayEntry struct {
	wep *api.WorkloadEndpoint // nil: deleted
	// rev is the write's revision, or for a delete the deleted copy's
	// revision + 1 (the delete happened at that revision or later).
	rev int64
	at  time.Time
}

// pendingWrite is an own write waiting for the syncer, for the sync-lag
// metric.
type pendingWrite struct {
	rev int64
	at  time.Time
}

// tombstoneTTL bounds how long a delete is remembered when the syncer
// never reports it (e.g. the endpoint was never delivered at all).
const tombstoneTTL = 5 * time.Minute

var _ datastore.Handler = (*view)(nil)

func newView(node string, now func() time.Time) *view {
	return &view{
		node: node, now: now,
		res: map[resKey]api.Resource{}, pools: map[string]netip.Prefix{}, local: map[string]overlayEntry{},
		dirty: map[resKey]struct{}{}, touched: map[string]struct{}{},
		changed: make(chan struct{}, 1), syncedCh: make(chan struct{}),
	}
}

// syncerKinds are the kinds the view needs: everything calc reads.
func syncerKinds() []api.KindInfo {
	var out []api.KindInfo
	for _, k := range []string{
		api.KindWorkloadEndpoint, api.KindHostEndpoint, api.KindIPPool, api.KindProfile, api.KindNode,
		api.KindGlobalNetworkPolicy, api.KindGlobalNetworkSet, api.KindNodeConfiguration,
		api.KindBGPConfiguration, api.KindBGPPeer,
	} {
		ki, _ := api.LookupKind(k)
		out = append(out, ki)
	}
	return out
}

// OnSnapshot implements datastore.Handler.
func (v *view) OnSnapshot(s datastore.Snapshot) {
	v.mu.Lock()
	old := v.res
	v.res = make(map[resKey]api.Resource, len(s.Resources))
	for k, r := range old {
		if k.kind == api.KindBlockAffinity { // the affinity syncer's
			v.res[k] = r
		}
	}
	v.pools = map[string]netip.Prefix{}
	for _, r := range s.Resources {
		v.putLocked(r)
	}
	for name, e := range v.local {
		_, present := v.res[resKey{api.KindWorkloadEndpoint, name}]
		if e.wep != nil && e.rev <= s.Revision || e.wep == nil && !present {
			delete(v.local, name)
		}
	}
	v.advanceLocked(s.Revision)
	v.reload = true
	clear(v.dirty)
	v.seq++
	wasReady := v.readyLocked()
	v.synced = true
	nowReady := v.readyLocked()
	v.mu.Unlock()
	if nowReady && !wasReady {
		close(v.syncedCh)
	}
	v.notify("")
}

// readyLocked reports whether every expected snapshot arrived.
func (v *view) readyLocked() bool { return v.synced && (v.affSynced || !v.needAff) }

// expectAffinities makes readiness wait for the affinity syncer's
// snapshot too. Call it before either syncer runs.
func (v *view) expectAffinities() {
	v.mu.Lock()
	v.needAff = true
	v.mu.Unlock()
}

// affinityFeed is the handler of the block-affinity syncer: it keeps the
// BlockAffinity resources in the view beside the typed ones. The two
// syncers' revisions are independent; affinities take no part in the
// overlay of own writes, which is about endpoints only.
type affinityFeed struct{ v *view }

var _ datastore.Handler = affinityFeed{}

// OnSnapshot implements datastore.Handler: the affinities replace the
// ones held, each difference marked for the loop.
func (f affinityFeed) OnSnapshot(s datastore.Snapshot) {
	v := f.v
	v.mu.Lock()
	for k := range v.res {
		if k.kind == api.KindBlockAffinity {
			delete(v.res, k)
			v.dirty[k] = struct{}{}
		}
	}
	for _, r := range s.Resources {
		k := resKey{api.KindBlockAffinity, r.GetObjectMeta().Name}
		v.res[k] = r
		v.dirty[k] = struct{}{}
	}
	v.seq++
	wasReady := v.readyLocked()
	v.affSynced = true
	nowReady := v.readyLocked()
	v.mu.Unlock()
	if nowReady && !wasReady {
		close(v.syncedCh)
	}
	v.notify(api.KindBlockAffinity)
}

// OnEvent implements datastore.Handler.
func (f affinityFeed) OnEvent(e datastore.Event) {
	v := f.v
	k := resKey{api.KindBlockAffinity, e.Name}
	v.mu.Lock()
	if e.Type == datastore.EventDelete {
		delete(v.res, k)
	} else {
		v.res[k] = e.Resource
	}
	v.dirty[k] = struct{}{}
	v.seq++
	v.mu.Unlock()
	v.notify(api.KindBlockAffinity)
}

// OnEvent implements datastore.Handler.
func (v *view) OnEvent(e datastore.Event) {
	v.mu.Lock()
	if e.Kind == api.KindWorkloadEndpoint {
		if ent, ok := v.local[e.Name]; ok && e.Revision >= ent.rev {
			delete(v.local, e.Name)
			// The syncer's copy of this node's own write: keep the copy the
			// loop already gave calc, so that each endpoint is in memory
			// once (calc's indexes keep parts of the first copy of an
			// endpoint, such as its labels, when an equal one follows).
			if ent.wep != nil && e.Type == datastore.EventPut && reflect.DeepEqual(ent.wep, e.Resource) {
				e.Resource = ent.wep
			}
		}
	}
	switch e.Type {
	case datastore.EventPut:
		v.putLocked(e.Resource)
	case datastore.EventDelete:
		v.deleteLocked(e.Kind, e.Name)
	}
	v.dirty[resKey{e.Kind, e.Name}] = struct{}{}
	// Events arrive in revision order: an own write at or below this
	// revision has been delivered (or superseded).
	for name, ent := range v.local {
		if ent.wep != nil && ent.rev <= e.Revision || ent.wep == nil && v.now().Sub(ent.at) > tombstoneTTL {
			delete(v.local, name)
			v.dirty[resKey{api.KindWorkloadEndpoint, name}] = struct{}{}
		}
	}
	v.advanceLocked(e.Revision)
	v.seq++
	v.mu.Unlock()
	v.notify(e.Kind)
}

func (v *view) putLocked(r api.Resource) {
	m := r.GetObjectMeta()
	k := resKey{r.GetTypeMeta().Kind, m.Name}
	if old, ok := v.res[k]; ok && reflect.DeepEqual(old, r) {
		return // keep the copy calc holds (as for an own write delivered)
	}
	v.res[k] = r
	if p, ok := r.(*api.IPPool); ok {
		if pfx, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			v.pools[m.Name] = pfx.Masked()
		}
	}
}

func (v *view) deleteLocked(kind, name string) {
	delete(v.res, resKey{kind, name})
	if kind == api.KindIPPool {
		delete(v.pools, name)
	}
}

func (v *view) advanceLocked(rev int64) {
	v.pending = slices.DeleteFunc(v.pending, func(p pendingWrite) bool { return p.rev <= rev })
}

// notify wakes the reconcile loop, and the subscribers of kind ("": a
// snapshot, every subscriber).
func (v *view) notify(kind string) {
	select {
	case v.changed <- struct{}{}:
	default:
	}
	v.mu.Lock()
	subs := v.subs
	v.mu.Unlock()
	for _, s := range subs {
		if kind != "" && !slices.Contains(s.kinds, kind) {
			continue
		}
		select {
		case s.c <- struct{}{}:
		default:
		}
	}
}

// subscription is a goroutine other than the reconcile loop waiting for
// changes of some kinds.
type subscription struct {
	c     chan struct{}
	kinds []string
}

// subscribe returns a channel that receives a token after a resource of
// one of the kinds changed (or a snapshot arrived), so that a watcher of
// Nodes and pools is not woken by every endpoint event.
func (v *view) subscribe(kinds ...string) <-chan struct{} {
	c := make(chan struct{}, 1)
	v.mu.Lock()
	v.subs = append(v.subs, subscription{c: c, kinds: kinds})
	v.mu.Unlock()
	return c
}

// nodeAndPools returns this node's Node (nil: not seen yet) and every
// IPPool. The results are shared: do not modify them.
func (v *view) nodeAndPools() (*api.Node, []*api.IPPool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, _ := v.res[resKey{api.KindNode, v.node}].(*api.Node)
	pools := make([]*api.IPPool, 0, len(v.pools))
	for name := range v.pools { // not all of res: it holds every endpoint
		if p, ok := v.res[resKey{api.KindIPPool, name}].(*api.IPPool); ok {
			pools = append(pools, p)
		}
	}
	slices.SortFunc(pools, func(a, b *api.IPPool) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return n, pools
}

// changes receives a token after the view changed.
func (v *view) changes() <-chan struct{} { return v.changed }

// ready reports whether the first snapshot has arrived.
func (v *view) ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.readyLocked()
}

// waitReady waits for the first snapshot or the end of ctx.
func (v *view) waitReady(ctx context.Context) error {
	select {
	case <-v.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drained is what changed in the view since the loop last looked.
type drained struct {
	// reload: a snapshot replaced the view, and changes hold every
	// resource; otherwise each changed resource's newest value (nil when
	// deleted), own writes included.
	reload  bool
	changes []change
	// touched are the endpoints to program again even if unchanged.
	touched []string
	// seq is the sequence number the result is current up to.
	seq uint64
}

// drain hands the loop what changed since the last drain.
func (v *view) drain() drained {
	v.mu.Lock()
	defer v.mu.Unlock()
	reload, seq := v.reload, v.seq
	if reload {
		keys := make(map[resKey]struct{}, len(v.res)+len(v.local))
		for k := range v.res {
			keys[k] = struct{}{}
		}
		for name := range v.local {
			keys[resKey{api.KindWorkloadEndpoint, name}] = struct{}{}
		}
		v.dirty = keys
	}
	changes := make([]change, 0, len(v.dirty))
	for k := range v.dirty {
		r := v.currentLocked(k)
		if reload && r == nil {
			continue
		}
		changes = append(changes, change{kind: k.kind, name: k.name, res: r})
	}
	touched := make([]string, 0, len(v.touched))
	for name := range v.touched {
		touched = append(touched, name)
	}
	v.reload = false
	v.dirty = map[resKey]struct{}{}
	clear(v.touched)
	return drained{reload: reload, changes: changes, touched: touched, seq: seq}
}

// currentLocked is a resource's newest value this node knows.
func (v *view) currentLocked(k resKey) api.Resource {
	if k.kind == api.KindWorkloadEndpoint {
		if e, ok := v.local[k.name]; ok {
			if e.wep == nil {
				return nil
			}
			return e.wep
		}
	}
	return v.res[k]
}

// current returns the sequence number of the latest change.
func (v *view) current() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seq
}

// touch marks an endpoint changed so that the loop programs it again
// (READY: its veth now exists) and returns the sequence number to wait
// for.
func (v *view) touch(name string) uint64 {
	v.mu.Lock()
	v.touched[name] = struct{}{}
	v.seq++
	seq := v.seq
	v.mu.Unlock()
	v.notify(api.KindWorkloadEndpoint)
	return seq
}

// wroteEndpoint records an endpoint this node just created or updated,
// as the datastore returned it.
func (v *view) wroteEndpoint(w *api.WorkloadEndpoint) {
	rev, _ := strconv.ParseInt(w.Metadata.ResourceVersion, 10, 64)
	v.ownWrite(w.Metadata.Name, overlayEntry{wep: w, rev: rev, at: v.now()})
}

// deletedEndpoint records that this node deleted an endpoint whose stored
// copy was at revision prevRev.
func (v *view) deletedEndpoint(name string, prevRev int64) {
	v.ownWrite(name, overlayEntry{rev: prevRev + 1, at: v.now()})
}

func (v *view) ownWrite(name string, e overlayEntry) {
	v.mu.Lock()
	// The syncer may deliver a write before the writer records it: then
	// the view (and calc) hold an equal copy already, which the overlay
	// shares, so that each endpoint is in memory once.
	if cur, ok := v.res[resKey{api.KindWorkloadEndpoint, name}].(*api.WorkloadEndpoint); ok && e.wep != nil && reflect.DeepEqual(cur, e.wep) {
		e.wep = cur
	}
	v.local[name] = e
	v.pending = append(v.pending, pendingWrite{rev: e.rev, at: e.at})
	v.dirty[resKey{api.KindWorkloadEndpoint, name}] = struct{}{}
	v.seq++
	v.mu.Unlock()
	v.notify(api.KindWorkloadEndpoint)
}

// endpoint returns this node's endpoint of that name (nil: none). The
// result is shared: do not modify it.
func (v *view) endpoint(name string) *api.WorkloadEndpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	w, _ := v.currentLocked(resKey{api.KindWorkloadEndpoint, name}).(*api.WorkloadEndpoint)
	if w == nil || w.Spec.Node != v.node {
		return nil
	}
	return w
}

// endpoints returns this node's endpoints sorted by name. The results are
// shared: do not modify them.
func (v *view) endpoints() []*api.WorkloadEndpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	merged := map[string]*api.WorkloadEndpoint{}
	for k, r := range v.res {
		if w, ok := r.(*api.WorkloadEndpoint); ok && w.Spec.Node == v.node {
			merged[k.name] = w
		}
	}
	for name, e := range v.local {
		if e.wep == nil {
			delete(merged, name)
		} else {
			merged[name] = e.wep
		}
	}
	out := make([]*api.WorkloadEndpoint, 0, len(merged))
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		out = append(out, merged[name])
	}
	return out
}

// hasProfile reports whether a profile of that name is known to exist.
func (v *view) hasProfile(name string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.res[resKey{api.KindProfile, name}]
	return ok
}

// notedProfile records a profile this node just created (or found), so
// that the next ADD on its network does not look for it again before the
// syncer delivers it.
func (v *view) notedProfile(p *api.Profile) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := resKey{api.KindProfile, p.Metadata.Name}
	if _, ok := v.res[k]; !ok {
		v.res[k] = p
		v.dirty[k] = struct{}{}
		v.seq++
	}
}

// poolPrefix returns the prefix of the IP pool holding a.
func (v *view) poolPrefix(a netip.Addr) (netip.Prefix, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var best netip.Prefix
	for _, p := range v.pools {
		if p.Contains(a) && p.Bits() > best.Bits() {
			best = p
		}
	}
	return best, best.IsValid()
}

// poolCount is the number of IP pools.
func (v *view) poolCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.pools)
}

// syncLag is how long the oldest own write has waited for the syncer to
// deliver it (0 when none waits).
func (v *view) syncLag(now time.Time) time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.pending) == 0 {
		return 0
	}
	oldest := v.pending[0].at
	for _, p := range v.pending[1:] {
		if p.at.Before(oldest) {
			oldest = p.at
		}
	}
	return now.Sub(oldest)
}
