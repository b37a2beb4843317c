package agent

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// view is calyx-node's in-memory copy of the datastore, fed by the syncer:
// this node's WorkloadEndpoints, the IP pools, the profiles and the nodes.
//
// It also holds an overlay of this node's own endpoint writes. A write is
// visible at once (a READY right after an ADD finds its endpoint), while
// the syncer delivers the same change a moment later; the overlay entry
// is dropped when the syncer has caught up with it, judged by etcd
// revisions, so a stale event can never resurrect a deleted endpoint or
// undo a newer write. The reconcile loop therefore always programs the
// newest state this node knows.
type view struct {
	node string
	now  func() time.Time

	mu       sync.Mutex // guards the following fields
	synced   bool       // a snapshot was delivered
	weps     map[string]*api.WorkloadEndpoint
	pools    map[string]netip.Prefix
	profiles map[string]bool
	nodes    map[string]*api.Node
	local    map[string]overlayEntry
	pending  []pendingWrite // own writes the syncer has not delivered yet

	changed  chan struct{} // receives a token when this node's endpoints change
	syncedCh chan struct{} // closed on the first snapshot
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
		weps: map[string]*api.WorkloadEndpoint{}, pools: map[string]netip.Prefix{},
		profiles: map[string]bool{}, nodes: map[string]*api.Node{}, local: map[string]overlayEntry{},
		changed: make(chan struct{}, 1), syncedCh: make(chan struct{}),
	}
}

// syncerKinds are the kinds the view needs.
func syncerKinds() []api.KindInfo {
	var out []api.KindInfo
	for _, k := range []string{api.KindWorkloadEndpoint, api.KindIPPool, api.KindProfile, api.KindNode} {
		ki, _ := api.LookupKind(k)
		out = append(out, ki)
	}
	return out
}

// OnSnapshot implements datastore.Handler.
func (v *view) OnSnapshot(s datastore.Snapshot) {
	v.mu.Lock()
	v.weps = map[string]*api.WorkloadEndpoint{}
	v.pools = map[string]netip.Prefix{}
	v.profiles = map[string]bool{}
	v.nodes = map[string]*api.Node{}
	for _, r := range s.Resources {
		v.putLocked(r)
	}
	for name, e := range v.local {
		_, present := v.weps[name]
		if e.wep != nil && e.rev <= s.Revision || e.wep == nil && !present {
			delete(v.local, name)
		}
	}
	v.advanceLocked(s.Revision)
	first := !v.synced
	v.synced = true
	v.mu.Unlock()
	if first {
		close(v.syncedCh)
	}
	v.notify()
}

// OnEvent implements datastore.Handler.
func (v *view) OnEvent(e datastore.Event) {
	v.mu.Lock()
	mine := false
	if e.Kind == api.KindWorkloadEndpoint {
		_, had := v.weps[e.Name]
		w, _ := e.Resource.(*api.WorkloadEndpoint)
		mine = had || w != nil && w.Spec.Node == v.node
		if ent, ok := v.local[e.Name]; ok && e.Revision >= ent.rev {
			delete(v.local, e.Name)
		}
	}
	switch e.Type {
	case datastore.EventPut:
		v.putLocked(e.Resource)
	case datastore.EventDelete:
		v.deleteLocked(e.Kind, e.Name)
	}
	// Events arrive in revision order: an own write at or below this
	// revision has been delivered (or superseded).
	for name, ent := range v.local {
		if ent.wep != nil && ent.rev <= e.Revision || ent.wep == nil && v.now().Sub(ent.at) > tombstoneTTL {
			delete(v.local, name)
		}
	}
	v.advanceLocked(e.Revision)
	v.mu.Unlock()
	if mine {
		v.notify()
	}
}

func (v *view) putLocked(r api.Resource) {
	name := r.GetObjectMeta().Name
	switch x := r.(type) {
	case *api.WorkloadEndpoint:
		if x.Spec.Node == v.node {
			v.weps[name] = x
		} else {
			delete(v.weps, name)
		}
	case *api.IPPool:
		if p, err := netip.ParsePrefix(x.Spec.CIDR); err == nil {
			v.pools[name] = p.Masked()
		}
	case *api.Profile:
		v.profiles[name] = true
	case *api.Node:
		v.nodes[name] = x
	}
}

func (v *view) deleteLocked(kind, name string) {
	switch kind {
	case api.KindWorkloadEndpoint:
		delete(v.weps, name)
	case api.KindIPPool:
		delete(v.pools, name)
	case api.KindProfile:
		delete(v.profiles, name)
	case api.KindNode:
		delete(v.nodes, name)
	}
}

func (v *view) advanceLocked(rev int64) {
	v.pending = slices.DeleteFunc(v.pending, func(p pendingWrite) bool { return p.rev <= rev })
}

func (v *view) notify() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// changes receives a token after this node's endpoints changed.
func (v *view) changes() <-chan struct{} { return v.changed }

// ready reports whether the first snapshot has arrived.
func (v *view) ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.synced
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

// wroteEndpoint records an endpoint this node just created or updated,
// as the datastore returned it.
func (v *view) wroteEndpoint(w *api.WorkloadEndpoint) {
	rev, _ := strconv.ParseInt(w.Metadata.ResourceVersion, 10, 64)
	now := v.now()
	v.mu.Lock()
	v.local[w.Metadata.Name] = overlayEntry{wep: w, rev: rev, at: now}
	v.pending = append(v.pending, pendingWrite{rev: rev, at: now})
	v.mu.Unlock()
	v.notify()
}

// deletedEndpoint records that this node deleted an endpoint whose stored
// copy was at revision prevRev.
func (v *view) deletedEndpoint(name string, prevRev int64) {
	now := v.now()
	v.mu.Lock()
	v.local[name] = overlayEntry{rev: prevRev + 1, at: now}
	v.pending = append(v.pending, pendingWrite{rev: prevRev + 1, at: now})
	v.mu.Unlock()
	v.notify()
}

// endpoint returns this node's endpoint of that name (nil: none). The
// result is shared: do not modify it.
func (v *view) endpoint(name string) *api.WorkloadEndpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.local[name]; ok {
		return e.wep
	}
	return v.weps[name]
}

// endpoints returns this node's endpoints sorted by name. The results are
// shared: do not modify them.
func (v *view) endpoints() []*api.WorkloadEndpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	merged := maps.Clone(v.weps)
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
	return v.profiles[name]
}

// notedProfile records that a profile exists (this node just made sure).
func (v *view) notedProfile(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.profiles[name] = true
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
