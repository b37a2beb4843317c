package datastore_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/selector"
	"github.com/google/go-cmp/cmp"
)

func TestKeyLayout(t *testing.T) {
	if got, want := datastore.ResourceKey(kind(t, "ippool"), "pool-a"), "/calyx/v1/ippool/pool-a"; got != want {
		t.Errorf("ResourceKey = %q, want %q", got, want)
	}
	if got, want := datastore.KindPrefix(kind(t, "gnp")), "/calyx/v1/globalnetworkpolicy/"; got != want {
		t.Errorf("KindPrefix = %q, want %q", got, want)
	}
}

func TestCreateStoresAndGetReads(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	in := pool("pool-a", "10.1.0.0/16", map[string]string{"zone": "a"})
	in.Metadata.ResourceVersion = "99" // ignored on create
	out := mustCreate(t, c, in)

	m := out.GetObjectMeta()
	if m.UID == "" || len(m.UID) != 36 {
		t.Errorf("uid = %q, want a UUID", m.UID)
	}
	if ts, err := time.Parse(time.RFC3339, m.CreationTimestamp); err != nil || !strings.HasSuffix(m.CreationTimestamp, "Z") || ts.IsZero() {
		t.Errorf("creationTimestamp = %q, want RFC 3339 UTC", m.CreationTimestamp)
	}
	if in.Metadata.UID != "" {
		t.Errorf("Create changed its argument")
	}

	got, err := c.Get(ctx, kind(t, "ippool"), "pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(out, got); diff != "" {
		t.Errorf("Get differs from what Create returned (-create +get):\n%s", diff)
	}

	// The stored value is MarshalStored JSON without the revision, and the
	// revision is the key's ModRevision.
	val, modRev, err := c.GetRaw(ctx, "/calyx/v1/ippool/pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if strconv.FormatInt(modRev, 10) != m.ResourceVersion {
		t.Errorf("ModRevision %d, resourceVersion %q", modRev, m.ResourceVersion)
	}
	var stored map[string]any
	if err := json.Unmarshal(val, &stored); err != nil {
		t.Fatal(err)
	}
	meta := stored["metadata"].(map[string]any)
	if stored["apiVersion"] != api.APIVersion || stored["kind"] != api.KindIPPool || meta["resourceVersion"] != nil || meta["uid"] != m.UID {
		t.Errorf("stored value %s", val)
	}

	if _, err := c.Get(ctx, kind(t, "ippool"), "nope"); !datastore.IsNotFound(err) {
		t.Errorf("Get of a missing pool: %v, want IsNotFound", err)
	}
}

func TestCreateExisting(t *testing.T) {
	c := setup(t)
	first := mustCreate(t, c, pool("pool-a", "10.1.0.0/16", nil))
	_, err := c.Create(testCtx(t), pool("pool-a", "10.2.0.0/16", nil))
	if !datastore.IsAlreadyExists(err) || !strings.Contains(err.Error(), `IPPool "pool-a"`) {
		t.Fatalf("second create: %v, want IsAlreadyExists naming the pool", err)
	}
	got, err := c.Get(testCtx(t), kind(t, "ippool"), "pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("the failed create changed the pool:\n%s", diff)
	}
}

func TestUpdate(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	created := mustCreate(t, c, pool("pool-a", "10.1.0.0/16", nil))

	edit := created.DeepCopyResource().(*api.IPPool)
	edit.Spec.CIDR = "10.2.0.0/16"
	updated, err := c.Update(ctx, edit)
	if err != nil {
		t.Fatal(err)
	}
	cm, um := created.GetObjectMeta(), updated.GetObjectMeta()
	if um.UID != cm.UID || um.CreationTimestamp != cm.CreationTimestamp || um.ResourceVersion == cm.ResourceVersion {
		t.Errorf("after update meta = %+v, created %+v", um, cm)
	}

	t.Run("stale revision", func(t *testing.T) {
		stale := created.DeepCopyResource().(*api.IPPool) // still at the first revision
		stale.Spec.CIDR = "10.3.0.0/16"
		_, err := c.Update(ctx, stale)
		if !datastore.IsConflict(err) {
			t.Fatalf("update with a stale revision: %v, want IsConflict", err)
		}
		for _, w := range []string{um.ResourceVersion, cm.ResourceVersion, `IPPool "pool-a"`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("conflict error %q lacks %q", err, w)
			}
		}
		got, err := c.Get(ctx, kind(t, "ippool"), "pool-a")
		if err != nil {
			t.Fatal(err)
		}
		if cidrOf(got) != "10.2.0.0/16" || got.GetObjectMeta().ResourceVersion != um.ResourceVersion {
			t.Errorf("stale update overwrote: %+v", got)
		}
	})

	t.Run("missing key", func(t *testing.T) {
		p := pool("ghost", "10.9.0.0/16", nil)
		p.Metadata.ResourceVersion = um.ResourceVersion
		if _, err := c.Update(ctx, p); !datastore.IsNotFound(err) {
			t.Errorf("update of a missing pool: %v, want IsNotFound", err)
		}
		if _, err := c.Get(ctx, kind(t, "ippool"), "ghost"); !datastore.IsNotFound(err) {
			t.Errorf("update of a missing pool created it: %v", err)
		}
	})

	t.Run("revision required", func(t *testing.T) {
		_, err := c.Update(ctx, pool("pool-a", "10.4.0.0/16", nil))
		if err == nil || datastore.IsConflict(err) || !strings.Contains(err.Error(), "resourceVersion") {
			t.Errorf("update without resourceVersion: %v", err)
		}
	})

	t.Run("identity kept when omitted", func(t *testing.T) {
		cur, err := c.Get(ctx, kind(t, "ippool"), "pool-a")
		if err != nil {
			t.Fatal(err)
		}
		p := pool("pool-a", "10.5.0.0/16", nil)
		p.Metadata.ResourceVersion = cur.GetObjectMeta().ResourceVersion
		out, err := c.Update(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if out.GetObjectMeta().UID != cm.UID || out.GetObjectMeta().CreationTimestamp != cm.CreationTimestamp {
			t.Errorf("update without uid lost it: %+v", out.GetObjectMeta())
		}
	})
}

func TestApply(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	first, err := c.Apply(ctx, pool("pool-a", "10.1.0.0/16", nil))
	if err != nil {
		t.Fatal(err)
	}
	fm := first.GetObjectMeta()
	if fm.UID == "" || fm.CreationTimestamp == "" {
		t.Fatalf("apply of a new pool: meta %+v", fm)
	}

	// A fresh document (no uid, no revision) replaces the spec and keeps
	// the identity.
	second, err := c.Apply(ctx, pool("pool-a", "10.2.0.0/16", map[string]string{"x": "y"}))
	if err != nil {
		t.Fatal(err)
	}
	sm := second.GetObjectMeta()
	if sm.UID != fm.UID || sm.CreationTimestamp != fm.CreationTimestamp || sm.ResourceVersion == fm.ResourceVersion || cidrOf(second) != "10.2.0.0/16" {
		t.Errorf("second apply: %+v %s", sm, cidrOf(second))
	}

	// An object from an earlier read is applied over newer data: apply is
	// an upsert, not a guarded update.
	stale := first.DeepCopyResource().(*api.IPPool)
	stale.Spec.CIDR = "10.3.0.0/16"
	third, err := c.Apply(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if third.GetObjectMeta().UID != fm.UID || cidrOf(third) != "10.3.0.0/16" {
		t.Errorf("third apply: %+v", third)
	}

	// After a delete, apply creates anew.
	if _, err := c.Delete(ctx, kind(t, "ippool"), "pool-a", ""); err != nil {
		t.Fatal(err)
	}
	fourth, err := c.Apply(ctx, third)
	if err != nil {
		t.Fatal(err)
	}
	if fourth.GetObjectMeta().UID == fm.UID {
		t.Errorf("apply after delete kept the old uid")
	}
}

func TestApplyConcurrent(t *testing.T) {
	c := setup(t)
	created := mustCreate(t, c, pool("pool-a", "10.1.0.0/16", nil))
	var wg sync.WaitGroup
	errs := make(chan error, 8*10)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				_, err := c.Apply(testCtx(t), pool("pool-a", "10."+strconv.Itoa(g*10+i)+".0.0/16", nil))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := c.Get(testCtx(t), kind(t, "ippool"), "pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetObjectMeta().UID != created.GetObjectMeta().UID {
		t.Errorf("concurrent applies changed the uid")
	}
}

func TestDelete(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	ipp := kind(t, "ippool")
	a := mustCreate(t, c, pool("a", "10.1.0.0/16", nil))
	b := mustCreate(t, c, pool("b", "10.2.0.0/16", nil))

	got, err := c.Delete(ctx, ipp, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Delete returned (-stored +returned):\n%s", diff)
	}
	if _, err := c.Get(ctx, ipp, "a"); !datastore.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := c.Delete(ctx, ipp, "a", ""); !datastore.IsNotFound(err) {
		t.Errorf("second delete: %v, want IsNotFound", err)
	}

	// With a revision: stale refuses, current deletes.
	edit := b.DeepCopyResource().(*api.IPPool)
	edit.Spec.CIDR = "10.3.0.0/16"
	b2, err := c.Update(ctx, edit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, ipp, "b", b.GetObjectMeta().ResourceVersion); !datastore.IsConflict(err) {
		t.Errorf("delete at a stale revision: %v, want IsConflict", err)
	}
	if _, err := c.Get(ctx, ipp, "b"); err != nil {
		t.Errorf("stale delete removed it: %v", err)
	}
	got, err = c.Delete(ctx, ipp, "b", b2.GetObjectMeta().ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if cidrOf(got) != "10.3.0.0/16" {
		t.Errorf("deleted %+v", got)
	}
	if _, err := c.Delete(ctx, ipp, "b", b2.GetObjectMeta().ResourceVersion); !datastore.IsNotFound(err) {
		t.Errorf("guarded delete of a missing pool: %v, want IsNotFound", err)
	}
}

func TestList(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	for _, p := range []*api.IPPool{
		pool("c", "10.3.0.0/16", map[string]string{"color": "blue"}),
		pool("a", "10.1.0.0/16", map[string]string{"color": "blue", "env": "prod"}),
		pool("b", "10.2.0.0/16", map[string]string{"color": "red"}),
		pool("d", "10.4.0.0/16", nil),
	} {
		mustCreate(t, c, p)
	}
	mustCreate(t, c, netSet("a", "192.0.2.0/24")) // another kind, same name

	names := func(rs []api.Resource) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.GetObjectMeta().Name)
		}
		return out
	}
	for _, tc := range []struct {
		sel  string
		want []string
	}{
		{"", []string{"a", "b", "c", "d"}},
		{`color == "blue"`, []string{"a", "c"}},
		{`color == "blue" && !has(env)`, []string{"c"}},
		{`!has(color)`, []string{"d"}},
	} {
		var sel *selector.Selector
		if tc.sel != "" {
			sel = selector.MustParse(tc.sel)
		}
		got, rev, err := c.List(ctx, kind(t, "ippool"), sel)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, names(got)); diff != "" {
			t.Errorf("List(%q) names (-want +got):\n%s", tc.sel, diff)
		}
		if want := mustRevision(t, c); rev != want {
			t.Errorf("List revision %d, want %d", rev, want)
		}
		for _, r := range got {
			if r.GetObjectMeta().ResourceVersion == "" || r.GetKind() != api.KindIPPool {
				t.Errorf("listed %+v", r)
			}
		}
	}
}

func TestEmptyNameRefused(t *testing.T) {
	c := setup(t)
	ctx := testCtx(t)
	noName := pool("", "10.1.0.0/16", nil)
	noName.Metadata.ResourceVersion = "5"
	for name, f := range map[string]func() (api.Resource, error){
		"create": func() (api.Resource, error) { return c.Create(ctx, noName) },
		"update": func() (api.Resource, error) { return c.Update(ctx, noName) },
		"apply":  func() (api.Resource, error) { return c.Apply(ctx, noName) },
		"slash":  func() (api.Resource, error) { return c.Create(ctx, pool("a/b", "10.1.0.0/16", nil)) },
	} {
		if _, err := f(); err == nil || !strings.Contains(err.Error(), "IPPool") {
			t.Errorf("%s: %v, want an error naming the kind", name, err)
		}
	}
	kvs, _, err := c.ListRaw(ctx, datastore.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 0 {
		t.Errorf("refused writes stored %d keys", len(kvs))
	}
}
