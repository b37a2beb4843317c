package datastore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says whether an Event stores or removes a resource.
type EventType int

// Event types.
const (
	EventPut    EventType = iota + 1 // created or changed
	EventDelete                      // removed
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change after the Snapshot. Resource is the new resource for
// a put and the last one the handler was given for a delete (nil if that
// value no longer decodes, which a Source's Decode never allows, and with
// WithoutDeletedValues). Revision is the
// etcd revision the handler is up to date with after applying the event;
// successive events never go back in revision.
type Event struct {
	Type     EventType
	Kind     string // e.g. "WorkloadEndpoint"
	Name     string
	Resource api.Resource
	Revision int64
}

// Snapshot is every stored resource of the requested kinds at one revision,
// ordered by kind then name.
type Snapshot struct {
	Revision  int64
	Resources []api.Resource
}

// Handler receives a syncer's output, always from the goroutine running
// Run, one call at a time: first one OnSnapshot, then OnEvent for every
// change. A slow handler delays delivery but loses nothing. The handler
// owns the resources it is given.
type Handler interface {
	OnSnapshot(Snapshot)
	OnEvent(Event)
}

// Status is a syncer's progress, for health checks and the sync-lag metric.
type Status struct {
	// InSync is true while the watch is running after a snapshot or resync,
	// false while the syncer is reconnecting and while the client's health
	// monitor finds etcd unavailable (the watch then delivers nothing, even
	// though its stream resumes by itself once etcd is back).
	InSync bool
	// Revision is the etcd revision the handler is up to date with, and
	// LastUpdate when it last advanced.
	Revision   int64
	LastUpdate time.Time
	// Resyncs counts recoveries (relists) since Run started.
	Resyncs int
}

// Backoff between recovery attempts: doubling from min to max, each delay
// jittered (see retryDelay).
const (
	syncerMinBackoff = 50 * time.Millisecond
	syncerMaxBackoff = 2 * time.Second
	syncerListLimit  = 30 * time.Second // bound on one list attempt
)

// Syncer keeps a Handler's copy of the stored resources current: it lists
// once, then watches from the list's revision, and when the watch breaks
// (compaction, etcd restart or unreachable, lost leader) it lists again and
// delivers only the differences as ordinary events.
type Syncer struct {
	c    *Client
	src  Source
	want map[string]bool // kind names; nil means every kind
	// kinds are the requested kinds, nil for all; listed in one read.
	kinds []api.KindInfo
	log   *slog.Logger
	now   func() time.Time
	rand  func() float64 // in [0, 1), for the backoff's jitter
	// noValues: deletes carry no resource, so no value is kept.
	noValues bool

	mu sync.Mutex // guards st
	st Status
}

// NewSyncer returns a syncer of the given kinds (nil: every kind) over c.
// Resources of other kinds, and keys under Prefix of no known kind, are
// ignored.
func NewSyncer(c *Client, kinds []api.KindInfo, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{c: c, src: typedSource(), log: log, now: time.Now, rand: rand.Float64}
	if kinds != nil {
		s.want = make(map[string]bool, len(kinds))
		for _, k := range kinds {
			if !s.want[k.Kind] {
				s.want[k.Kind] = true
				s.kinds = append(s.kinds, k)
			}
		}
	}
	return s
}

// Source is a part of the key space that a Syncer lists and watches, and
// how its keys and values become resources. NewSyncer's source is the
// typed resources under Prefix; a package that keeps documents under keys
// of its own (IPAM's block affinities) supplies a Source for them, so that
// what it stores reaches calc the same way every resource does.
type Source struct {
	// Prefix is listed and watched.
	Prefix string
	// Parse resolves a key to the kind and name of the resource it holds;
	// it reports false for keys the source ignores.
	Parse func(key string) (kind, name string, ok bool)
	// Decode turns a stored value into its resource.
	Decode func(kind, name string, value []byte) (api.Resource, error)
}

// NewSourceSyncer returns a syncer of src over c. It keeps its own
// revision: its events are ordered among themselves, not with another
// syncer's.
func NewSourceSyncer(c *Client, src Source, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{c: c, src: src, log: log, now: time.Now, rand: rand.Float64}
}

// WithoutDeletedValues makes the syncer's delete events carry no Resource
// (Kind and Name say what went), so that it need not keep a copy of every
// stored value to hand back: for a handler that keeps what it needs
// itself. It returns s, and must be called before Run.
func (s *Syncer) WithoutDeletedValues() *Syncer {
	s.noValues = true
	return s
}

// keep is what the syncer remembers of a key it delivered.
func (s *Syncer) keep(kind, name string, kv *mvccpb.KeyValue) entry {
	e := entry{kind: kind, name: name, modRev: kv.ModRevision}
	if !s.noValues {
		e.value = kv.Value
	}
	return e
}

// typedSource is the typed resources under Prefix.
func typedSource() Source {
	return Source{
		Prefix: Prefix,
		Parse: func(key string) (string, string, bool) {
			k, name, ok := parseKey(key)
			return k.Kind, name, ok
		},
		Decode: func(kind, _ string, value []byte) (api.Resource, error) {
			return api.UnmarshalStored(kindTable().byKind[kind], value)
		},
	}
}

// decode decodes a value of src, stamping the resource's name and
// revision.
func (s *Syncer) decode(kind, name string, value []byte, modRev int64) (api.Resource, error) {
	r, err := s.src.Decode(kind, name, value)
	if err != nil {
		return nil, fmt.Errorf("%s %q at revision %d: %w", kind, name, modRev, err)
	}
	m := r.GetObjectMeta()
	m.Name = name
	m.ResourceVersion = formatRevision(modRev)
	return r, nil
}

// Status returns the syncer's current progress.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if !s.c.Health().Available() {
		st.InSync = false
	}
	return st
}

// entry is what the syncer remembers of each key the handler holds: enough
// to tell whether a relisted key changed and to hand back the last value on
// delete.
type entry struct {
	kind   string // kind name, e.g. "IPPool"
	name   string
	value  []byte // nil with WithoutDeletedValues
	modRev int64
}

// syncState is one Run's view of what the handler holds.
type syncState struct {
	h     Handler
	known map[string]entry // by key; nil until the snapshot
	rev   int64            // revision the handler is up to date with
}

// Run delivers the snapshot and then every change to h until ctx is done,
// when it returns nil. It recovers from every etcd failure by itself,
// logging each and retrying with a jittered backoff that doubles from
// 50 ms to 2 s (so that nodes do not all relist at once); it returns an error only if the Client is closed under it. Each Run
// starts with a new snapshot; run one at a time per Syncer.
func (s *Syncer) Run(ctx context.Context, h Handler) error {
	st := &syncState{h: h}
	backoff := retryDelay{min: syncerMinBackoff, max: syncerMaxBackoff, rand: s.rand}
	for {
		progressed, err := s.listAndWatch(ctx, st)
		if ctx.Err() != nil {
			s.setInSync(false)
			return nil
		}
		s.setInSync(false)
		if s.c.cli.Ctx().Err() != nil {
			return fmt.Errorf("syncing: the datastore client was closed: %w", err)
		}
		if progressed {
			backoff.reset()
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			s.log.Info("datastore watch fell behind compaction; resyncing", "revision", st.rev, "err", err)
			continue // nothing to wait for
		}
		d := backoff.next()
		s.log.Warn("datastore watch interrupted; resyncing", "revision", st.rev, "retry_in", d, "err", err)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// retryDelay is an exponential backoff with jitter: the base delay doubles
// from min to max, and each delay is drawn uniformly from [base/2,
// base*3/2). Without the jitter every node whose watch broke at the same
// moment (an etcd restart, a lost leader) would relist at the same moment,
// again and again.
type retryDelay struct {
	min, max time.Duration
	rand     func() float64 // in [0, 1)
	base     time.Duration  // of the next delay; 0: min
}

// next returns the delay before the next attempt and doubles the base.
func (r *retryDelay) next() time.Duration {
	if r.base == 0 {
		r.base = r.min
	}
	d := r.base/2 + time.Duration(r.rand()*float64(r.base))
	r.base = min(2*r.base, r.max)
	return d
}

// reset starts again from min.
func (r *retryDelay) reset() { r.base = 0 }

// listAndWatch lists, delivers the snapshot or the differences, and
// watches until the watch fails. progressed reports whether the watch
// delivered anything, i.e. whether the connection was healthy for a while.
func (s *Syncer) listAndWatch(ctx context.Context, st *syncState) (progressed bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, syncerListLimit)
	kvs, rev, err := s.list(lctx)
	cancel()
	if err != nil {
		return false, err
	}
	if st.known == nil {
		s.snapshot(st, kvs, rev)
	} else {
		s.resync(st, kvs, rev)
		s.mu.Lock()
		s.st.Resyncs++
		s.mu.Unlock()
	}
	st.rev = rev
	s.advance(rev, true)
	return s.watch(ctx, st)
}

// list reads every requested kind in one read at one revision.
func (s *Syncer) list(ctx context.Context) ([]*mvccpb.KeyValue, int64, error) {
	if s.kinds == nil {
		resp, err := s.c.cli.Get(ctx, s.src.Prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, 0, s.c.wrapErr("listing "+s.src.Prefix, err)
		}
		return resp.Kvs, resp.Header.Revision, nil
	}
	gets := make([]clientv3.Op, len(s.kinds))
	for i, k := range s.kinds {
		gets[i] = clientv3.OpGet(KindPrefix(k), clientv3.WithPrefix())
	}
	resp, err := s.c.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, 0, s.c.wrapErr("listing "+s.src.Prefix, err)
	}
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs = append(kvs, r.GetResponseRange().GetKvs()...)
	}
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return cmp.Compare(string(a.Key), string(b.Key)) })
	return kvs, resp.Header.Revision, nil
}

// wanted resolves a key to a requested kind and a name.
func (s *Syncer) wanted(key string) (string, string, bool) {
	kind, name, ok := s.src.Parse(key)
	if !ok || (s.want != nil && !s.want[kind]) {
		return "", "", false
	}
	return kind, name, true
}

func (s *Syncer) snapshot(st *syncState, kvs []*mvccpb.KeyValue, rev int64) {
	st.known = make(map[string]entry, len(kvs))
	snap := Snapshot{Revision: rev, Resources: make([]api.Resource, 0, len(kvs))}
	for _, kv := range kvs {
		key := string(kv.Key)
		kind, name, ok := s.wanted(key)
		if !ok {
			continue
		}
		r, err := s.decode(kind, name, kv.Value, kv.ModRevision)
		if err != nil {
			s.log.Warn("skipping undecodable stored resource", "key", key, "err", err)
			continue
		}
		st.known[key] = s.keep(kind, name, kv)
		snap.Resources = append(snap.Resources, r)
	}
	st.h.OnSnapshot(snap)
}

// resync delivers the difference between what the handler holds and a new
// list at rev: puts for new or changed keys in the order they were written,
// then deletes for vanished keys (in key order, at rev).
func (s *Syncer) resync(st *syncState, kvs []*mvccpb.KeyValue, rev int64) {
	seen := make(map[string]bool, len(kvs))
	var changed []*mvccpb.KeyValue
	for _, kv := range kvs {
		key := string(kv.Key)
		if _, _, ok := s.wanted(key); !ok {
			continue
		}
		seen[key] = true
		if old, had := st.known[key]; !had || old.modRev != kv.ModRevision {
			changed = append(changed, kv)
		}
	}
	slices.SortFunc(changed, func(a, b *mvccpb.KeyValue) int {
		return cmp.Or(cmp.Compare(a.ModRevision, b.ModRevision), cmp.Compare(string(a.Key), string(b.Key)))
	})
	var gone []string
	for key := range st.known {
		if !seen[key] {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	s.log.Info("datastore resynced", "revision", rev, "changed", len(changed), "deleted", len(gone))
	for _, kv := range changed {
		kind, name, _ := s.wanted(string(kv.Key))
		s.put(st, string(kv.Key), kind, name, kv, kv.ModRevision)
	}
	for _, key := range gone {
		s.del(st, key, rev)
	}
}

// watch delivers events from st.rev+1 until the watch fails or ctx ends.
func (s *Syncer) watch(ctx context.Context, st *syncState) (progressed bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := st.rev + 1
	// No WithPrevKV: the syncer already holds the last value of every key
	// it delivered (or, WithoutDeletedValues, needs none), so the server
	// need not send it again with each change.
	wch := s.c.cli.Watch(wctx, s.src.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return progressed, fmt.Errorf("watching %s (started at revision %d): %w", s.src.Prefix, from, err)
		}
		for _, ev := range resp.Events {
			s.event(st, ev)
		}
		if len(resp.Events) > 0 {
			progressed = true
			s.advance(st.rev, false)
		}
	}
	if ctx.Err() != nil {
		return progressed, nil
	}
	return progressed, fmt.Errorf("watching %s (started at revision %d): watch channel closed", s.src.Prefix, from)
}

// event applies one watch event. Every event advances the revision, even
// for keys the handler does not want.
func (s *Syncer) event(st *syncState, ev *clientv3.Event) {
	st.rev = max(st.rev, ev.Kv.ModRevision)
	key := string(ev.Kv.Key)
	kind, name, ok := s.wanted(key)
	if !ok {
		return
	}
	switch ev.Type {
	case mvccpb.PUT:
		s.put(st, key, kind, name, ev.Kv, ev.Kv.ModRevision)
	case mvccpb.DELETE:
		s.del(st, key, ev.Kv.ModRevision)
	}
}

// put delivers a stored value unless the handler already has it. A value
// that does not decode is logged and treated as absent: if the handler held
// an earlier, valid value of the key, it is told the key is gone, so that
// its view stays the same whatever path led to it.
func (s *Syncer) put(st *syncState, key string, kind, name string, kv *mvccpb.KeyValue, rev int64) {
	old, had := st.known[key]
	if had && old.modRev == kv.ModRevision {
		return
	}
	r, err := s.decode(kind, name, kv.Value, kv.ModRevision)
	if err != nil {
		s.log.Warn("skipping undecodable stored resource", "key", key, "err", err)
		if had {
			s.del(st, key, rev)
		}
		return
	}
	st.known[key] = s.keep(kind, name, kv)
	st.h.OnEvent(Event{Type: EventPut, Kind: kind, Name: name, Resource: r, Revision: rev})
}

// del delivers a delete of a key the handler holds, with its last value
// (none WithoutDeletedValues).
func (s *Syncer) del(st *syncState, key string, rev int64) {
	old, had := st.known[key]
	if !had {
		return
	}
	delete(st.known, key)
	var r api.Resource
	if !s.noValues {
		var err error
		if r, err = s.decode(old.kind, old.name, old.value, old.modRev); err != nil { // unreachable: the same bytes decoded when they were stored
			s.log.Warn("a deleted resource's last value no longer decodes", "key", key, "err", err)
			r = nil
		}
	}
	st.h.OnEvent(Event{Type: EventDelete, Kind: old.kind, Name: old.name, Resource: r, Revision: rev})
}

func (s *Syncer) advance(rev int64, inSync bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if inSync {
		s.st.InSync = true
	}
	if rev != s.st.Revision {
		s.st.Revision = rev
		s.st.LastUpdate = now
	}
}

func (s *Syncer) setInSync(v bool) {
	s.mu.Lock()
	s.st.InSync = v
	s.mu.Unlock()
}

// sleep waits for d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
