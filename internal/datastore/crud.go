package datastore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/selector"
	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxApplyAttempts bounds Apply's CAS loop. After a wrong first guess an
// attempt fails only if the key was deleted or re-created in between; ten
// in a row means something is churning it and the caller should hear
// about it.
const maxApplyAttempts = 10

// decode turns a stored value into a resource of kind, taking its name from
// the key and its resourceVersion from the key's ModRevision.
func decode(kind api.KindInfo, name string, value []byte, modRev int64) (api.Resource, error) {
	r, err := api.UnmarshalStored(kind, value)
	if err != nil {
		return nil, fmt.Errorf("%s %q at revision %d: %w", kind.Kind, name, modRev, err)
	}
	m := r.GetObjectMeta()
	m.Name = name
	m.ResourceVersion = formatRevision(modRev)
	return r, nil
}

func decodeKV(kind api.KindInfo, name string, kv *mvccpb.KeyValue) (api.Resource, error) {
	return decode(kind, name, kv.Value, kv.ModRevision)
}

// encode returns a copy of r with the given identity and its stored form:
// exactly the bytes api.MarshalStored gives for that copy. It does not call
// MarshalStored, which deep-copies its argument through a JSON round trip
// first and so doubles the CPU a write costs; a reflective deep copy is
// enough, and TestEncodeMatchesMarshalStored keeps the bytes identical.
func encode(r api.Resource, uid, created string) (api.Resource, []byte, error) {
	c := cloneResource(r)
	*c.GetTypeMeta() = api.TypeMeta{Kind: r.GetKind(), APIVersion: api.APIVersion}
	m := c.GetObjectMeta()
	m.ResourceVersion = ""
	m.UID = uid
	m.CreationTimestamp = created
	b, err := json.Marshal(c)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding %s %q: %w", r.GetKind(), m.Name, err)
	}
	return c, b, nil
}

// written completes the copy a successful write stored with the write's
// revision, and returns it.
func written(c api.Resource, rev int64) api.Resource {
	c.GetObjectMeta().ResourceVersion = formatRevision(rev)
	return c
}

// storedIdentity reads only uid and creationTimestamp from a stored value,
// which is all Apply needs to preserve.
func storedIdentity(value []byte) (uid, created string) {
	var v struct {
		Metadata struct {
			UID               string `json:"uid"`
			CreationTimestamp string `json:"creationTimestamp"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(value, &v) // an undecodable value gets a fresh identity
	return v.Metadata.UID, v.Metadata.CreationTimestamp
}

// identity returns uid and created, or fresh values for the empty ones.
func (c *Client) identity(uid, created string) (string, string) {
	if uid == "" {
		uid = newUID()
	}
	if created == "" {
		created = c.timestamp()
	}
	return uid, created
}

// Get returns the named resource of kind.
func (c *Client) Get(ctx context.Context, kind api.KindInfo, name string) (api.Resource, error) {
	if err := checkName(kind.Kind, name); err != nil {
		return nil, err
	}
	resp, err := c.cli.Get(ctx, ResourceKey(kind, name))
	if err != nil {
		return nil, c.wrapErr(fmt.Sprintf("getting %s %q", kind.Kind, name), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound(kind.Kind, name)
	}
	return decodeKV(kind, name, resp.Kvs[0])
}

// List returns every resource of kind whose labels match sel (all of them
// when sel is nil), sorted by name, and the etcd revision the list was read
// at: a watch from that revision + 1 misses nothing. A stored value that
// does not decode is logged and left out.
func (c *Client) List(ctx context.Context, kind api.KindInfo, sel *selector.Selector) ([]api.Resource, int64, error) {
	resp, err := c.cli.Get(ctx, KindPrefix(kind), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, c.wrapErr("listing "+kind.Plural, err)
	}
	out := make([]api.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k, name, ok := parseKey(string(kv.Key))
		if !ok || k.Kind != kind.Kind {
			continue
		}
		r, err := decodeKV(kind, name, kv)
		if err != nil {
			c.log.Warn("skipping undecodable stored resource", "key", string(kv.Key), "err", err)
			continue
		}
		if sel != nil && !sel.Evaluate(r.GetObjectMeta().Labels) {
			continue
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetObjectMeta().Name < out[j].GetObjectMeta().Name })
	return out, resp.Header.Revision, nil
}

// Create stores r, which must not exist yet, with a new uid and
// creationTimestamp, and returns the stored copy with its resourceVersion.
// If it exists, the error satisfies IsAlreadyExists.
func (c *Client) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	return c.create(ctx, r, nil)
}

// CreateFenced is Create that writes only if fence holds (the claim it was
// taken from is still as its holder wrote it). When fence fails it writes
// nothing and returns a *ClaimLostError, whether or not r exists.
func (c *Client) CreateFenced(ctx context.Context, r api.Resource, fence Cond) (api.Resource, error) {
	return c.create(ctx, r, &fence)
}

func (c *Client) create(ctx context.Context, r api.Resource, fence *Cond) (api.Resource, error) {
	kind, key, err := target(r)
	if err != nil {
		return nil, err
	}
	name := r.GetObjectMeta().Name
	out, val, err := encode(r, newUID(), c.timestamp())
	if err != nil {
		return nil, err
	}
	w := &groupWrite{verb: "creating", kind: kind.Kind, name: name, key: key, size: len(key) + len(val)}
	w.cmps, w.reads = withFence(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Version(key), "=", 0)},
		[]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}, fence)
	w.put = clientv3.OpPut(key, string(val))
	w.judge = func(reads []*etcdserverpb.ResponseOp) (bool, error) {
		if lost := fenceLostIn(reads, fence); lost != nil {
			return false, fmt.Errorf("%s: %w", w.describe(), lost)
		}
		if len(reads[0].GetResponseRange().GetKvs()) > 0 {
			return false, alreadyExists(kind.Kind, name)
		}
		return true, nil
	}
	rev, err := c.commit(ctx, w)
	if err != nil {
		return nil, err
	}
	return written(out, rev), nil
}

// Update replaces r if the stored copy is still at r's resourceVersion,
// which is required. A stale resourceVersion fails with an IsConflict error
// and writes nothing; a missing resource fails with IsNotFound. uid and
// creationTimestamp are kept as r carries them (they came with the read
// that produced the resourceVersion); when r lacks them they are taken from
// the stored copy.
func (c *Client) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	return c.update(ctx, r, nil)
}

// UpdateFenced is Update that writes only if fence holds (the claim it was
// taken from is still as its holder wrote it). When fence fails it writes
// nothing and returns a *ClaimLostError.
func (c *Client) UpdateFenced(ctx context.Context, r api.Resource, fence Cond) (api.Resource, error) {
	return c.update(ctx, r, &fence)
}

func (c *Client) update(ctx context.Context, r api.Resource, fence *Cond) (api.Resource, error) {
	kind, key, err := target(r)
	if err != nil {
		return nil, err
	}
	m := r.GetObjectMeta()
	what := fmt.Sprintf("updating %s %q", kind.Kind, m.Name)
	if m.ResourceVersion == "" {
		return nil, fmt.Errorf("%s: metadata.resourceVersion is required (read the resource first, or use apply)", what)
	}
	rev, err := parseRevision(kind.Kind, m.Name, m.ResourceVersion)
	if err != nil {
		return nil, err
	}
	uid, created := m.UID, m.CreationTimestamp
	if uid == "" || created == "" {
		cur, err := c.cli.Get(ctx, key)
		if err != nil {
			return nil, c.wrapErr(what, err)
		}
		if len(cur.Kvs) == 0 {
			return nil, notFound(kind.Kind, m.Name)
		}
		if cur.Kvs[0].ModRevision != rev {
			return nil, conflict(kind.Kind, m.Name, cur.Kvs[0].ModRevision, m.ResourceVersion)
		}
		su, sc := storedIdentity(cur.Kvs[0].Value)
		uid, created = c.identity(firstNonEmpty(uid, su), firstNonEmpty(created, sc))
	}
	out, val, err := encode(r, uid, created)
	if err != nil {
		return nil, err
	}
	w := &groupWrite{verb: "updating", kind: kind.Kind, name: m.Name, key: key, size: len(key) + len(val)}
	w.cmps, w.reads = withFence(
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
		[]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}, fence)
	w.put = clientv3.OpPut(key, string(val))
	given := m.ResourceVersion
	w.judge = func(reads []*etcdserverpb.ResponseOp) (bool, error) {
		if lost := fenceLostIn(reads, fence); lost != nil {
			return false, fmt.Errorf("%s: %w", w.describe(), lost)
		}
		kvs := reads[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return false, notFound(kind.Kind, w.name)
		}
		if kvs[0].ModRevision != rev {
			return false, conflict(kind.Kind, w.name, kvs[0].ModRevision, given)
		}
		return true, nil
	}
	wrev, err := c.commit(ctx, w)
	if err != nil {
		return nil, err
	}
	return written(out, wrev), nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// applyGuard is the condition of one Apply attempt.
type applyGuard struct {
	// modRev, when set, is a hint from the caller: the key is still at the
	// revision the caller read.
	modRev int64
	// createRev, when set, says the key is still the incarnation (created
	// at that revision) whose uid and creationTimestamp were read. Guarding
	// on it rather than on ModRevision lets concurrent applies of one
	// resource all succeed, last writer wins, without retrying: they all
	// preserve the same identity. Only a delete and re-create in between
	// forces a retry.
	createRev int64
	// neither set: the key must not exist.
}

func (g applyGuard) cmp(key string) clientv3.Cmp {
	switch {
	case g.modRev != 0:
		return clientv3.Compare(clientv3.ModRevision(key), "=", g.modRev)
	case g.createRev != 0:
		return clientv3.Compare(clientv3.CreateRevision(key), "=", g.createRev)
	}
	return clientv3.Compare(clientv3.Version(key), "=", 0)
}

// holds reports whether the guard holds for the current value of the key
// (nil: missing).
func (g applyGuard) holds(kv *mvccpb.KeyValue) bool {
	switch {
	case kv == nil:
		return g.modRev == 0 && g.createRev == 0
	case g.modRev != 0:
		return kv.ModRevision == g.modRev
	}
	return kv.CreateRevision == g.createRev
}

// applyStart returns the first guess of an Apply: a single CAS against the
// caller's revision when r carries revision, uid and creationTimestamp (an
// object this package returned), otherwise a create with a fresh identity.
func (c *Client) applyStart(kind api.KindInfo, m *api.ObjectMeta) (applyGuard, string, string) {
	if m.ResourceVersion != "" && m.UID != "" && m.CreationTimestamp != "" {
		if rev, err := parseRevision(kind.Kind, m.Name, m.ResourceVersion); err == nil {
			return applyGuard{modRev: rev}, m.UID, m.CreationTimestamp
		}
	}
	return applyGuard{}, newUID(), c.timestamp()
}

// applyNext derives the next attempt's guard and identity from the value
// the failed attempt found (nil: missing).
func (c *Client) applyNext(kv *mvccpb.KeyValue) (applyGuard, string, string) {
	if kv == nil {
		return applyGuard{}, newUID(), c.timestamp()
	}
	uid, created := c.identity(storedIdentity(kv.Value))
	return applyGuard{createRev: kv.CreateRevision}, uid, created
}

// Apply stores r whether or not it exists (an upsert), keeping the stored
// uid and creationTimestamp when it does. r's resourceVersion is not a
// guard (use Update for that) but a hint: when r carries a resourceVersion,
// uid and creationTimestamp, as an object returned by this package does, the
// first attempt is a single CAS against that revision. Otherwise the first
// attempt is a create, so a new resource costs one round trip. When the
// guess is wrong the failed transaction returns the stored value, and the
// second attempt writes over that incarnation of the key with its identity;
// only a concurrent delete makes Apply retry again, at most 10 attempts in
// all. Like Create and Update, Apply shares its transaction with the
// writes of other goroutines that happen at the same time (see group.go);
// each keeps its own guard.
func (c *Client) Apply(ctx context.Context, r api.Resource) (api.Resource, error) {
	kind, key, err := target(r)
	if err != nil {
		return nil, err
	}
	m := r.GetObjectMeta()
	guard, uid, created := c.applyStart(kind, m)
	out, val, err := encode(r, uid, created)
	if err != nil {
		return nil, err
	}
	w := &groupWrite{verb: "applying", kind: kind.Kind, name: m.Name, key: key}
	attempt := func() {
		w.size = len(key) + len(val)
		w.cmps = []clientv3.Cmp{guard.cmp(key)}
		w.put = clientv3.OpPut(key, string(val))
	}
	attempt()
	w.reads = []clientv3.Op{clientv3.OpGet(key)}
	attempts := 1
	w.judge = func(reads []*etcdserverpb.ResponseOp) (bool, error) {
		var cur *mvccpb.KeyValue
		if kvs := reads[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			cur = kvs[0]
		}
		if guard.holds(cur) {
			return true, nil
		}
		if attempts == maxApplyAttempts {
			return false, &storeError{code: codeConflict, msg: fmt.Sprintf(
				"%s: gave up after %d attempts, another writer kept deleting and re-creating it", w.describe(), maxApplyAttempts)}
		}
		attempts++
		guard, uid, created = c.applyNext(cur)
		var err error
		if out, val, err = encode(r, uid, created); err != nil {
			return false, err
		}
		attempt()
		return false, nil
	}
	rev, err := c.commit(ctx, w)
	if err != nil {
		return nil, err
	}
	return written(out, rev), nil
}

// Delete removes the named resource of kind and returns it as it was
// stored. With a non-empty resourceVersion the delete happens only if the
// stored copy is still at that revision (IsConflict otherwise). A missing
// resource fails with IsNotFound.
func (c *Client) Delete(ctx context.Context, kind api.KindInfo, name, resourceVersion string) (api.Resource, error) {
	if err := checkName(kind.Kind, name); err != nil {
		return nil, err
	}
	key := ResourceKey(kind, name)
	what := fmt.Sprintf("deleting %s %q", kind.Kind, name)
	if resourceVersion == "" {
		resp, err := c.cli.Delete(ctx, key, clientv3.WithPrevKV())
		if err != nil {
			return nil, c.wrapErr(what, err)
		}
		if len(resp.PrevKvs) == 0 {
			return nil, notFound(kind.Kind, name)
		}
		return c.decodeDeleted(kind, name, resp.PrevKvs[0]), nil
	}
	rev, err := parseRevision(kind.Kind, name, resourceVersion)
	if err != nil {
		return nil, err
	}
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, c.wrapErr(what, err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return nil, notFound(kind.Kind, name)
		}
		return nil, conflict(kind.Kind, name, kvs[0].ModRevision, resourceVersion)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 { // unreachable: the guard proved it existed
		return nil, notFound(kind.Kind, name)
	}
	return c.decodeDeleted(kind, name, prev[0]), nil
}

// decodeDeleted decodes a deleted value; one that does not decode is still
// reported as deleted, by kind and name only.
func (c *Client) decodeDeleted(kind api.KindInfo, name string, kv *mvccpb.KeyValue) api.Resource {
	r, err := decodeKV(kind, name, kv)
	if err != nil {
		c.log.Warn("deleted an undecodable stored resource", "key", string(kv.Key), "err", err)
		r = kind.New()
		r.GetObjectMeta().Name = name
		r.GetObjectMeta().ResourceVersion = formatRevision(kv.ModRevision)
	}
	return r
}
