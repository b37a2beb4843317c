package ipam_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }

// netipComparers lets go-cmp compare netip values by value.
var netipComparers = cmp.Options{
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
}

// env is one test's etcd and a client to it.
type env struct {
	t *testing.T
	c *datastore.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := testnet.StartEtcd(t)
	return &env{t: t, c: testnet.NewClient(t, e)}
}

// testCtx bounds a test's calls so that a bug hangs for a minute at most.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// apply stores resources, defaulted and validated like calyxctl does.
func (e *env) apply(rs ...api.Resource) {
	e.t.Helper()
	for _, r := range rs {
		r.SetDefaults()
		if err := r.Validate(); err != nil {
			e.t.Fatalf("invalid test resource: %v", err)
		}
		if _, err := e.c.Apply(testCtx(e.t), r); err != nil {
			e.t.Fatalf("applying %s %q: %v", r.GetKind(), r.GetObjectMeta().Name, err)
		}
	}
}

func ipamSettings(strict bool, autoAllocate bool, maxBlocks int) *api.IPAMConfiguration {
	return &api.IPAMConfiguration{Metadata: api.ObjectMeta{Name: "default"},
		Spec: api.IPAMConfigurationSpec{StrictAffinity: strict, AutoAllocateBlocks: &autoAllocate, MaxBlocksPerHost: maxBlocks}}
}

func node(name string, labels map[string]string) *api.Node {
	return &api.Node{Metadata: api.ObjectMeta{Name: name, Labels: labels}}
}

func (e *env) alloc(opts ...ipam.Option) *ipam.Allocator {
	return ipam.New(e.c, opts...)
}

// raw returns a key's value ("" when missing).
func (e *env) raw(key string) string {
	e.t.Helper()
	v, _, err := e.c.GetRaw(testCtx(e.t), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(v)
}

// put writes raw keys unguarded, to build inconsistent states.
func (e *env) put(kvs ...string) {
	e.t.Helper()
	var puts []datastore.RawPut
	for i := 0; i+1 < len(kvs); i += 2 {
		puts = append(puts, datastore.RawPut{Key: kvs[i], Value: []byte(kvs[i+1])})
	}
	if ok, _, err := e.c.CAS(testCtx(e.t), nil, puts, nil); err != nil || !ok {
		e.t.Fatalf("writing raw keys: %v %v", ok, err)
	}
}

func (e *env) del(keys ...string) {
	e.t.Helper()
	if ok, _, err := e.c.CAS(testCtx(e.t), nil, nil, keys); err != nil || !ok {
		e.t.Fatalf("deleting raw keys: %v %v", ok, err)
	}
}

func mustAssign(t *testing.T, a *ipam.Allocator, args ipam.AutoAssignArgs) ipam.AssignResult {
	t.Helper()
	res, err := a.AutoAssign(testCtx(t), args)
	if err != nil {
		t.Fatalf("AutoAssign(%+v): %v", args, err)
	}
	if len(res.IPv4) < args.Num4 || len(res.IPv6) < args.Num6 {
		t.Fatalf("AutoAssign(%+v) = %v, too few", args, res)
	}
	return res
}

func v4(n int, handle, nodeName string) ipam.AutoAssignArgs {
	return ipam.AutoAssignArgs{Num4: n, Handle: handle, Node: nodeName}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// mustCheckClean fails when Check reports anything.
func mustCheckClean(t *testing.T, a *ipam.Allocator, eps ...ipam.Endpoint) {
	t.Helper()
	r, err := a.Check(testCtx(t), eps...)
	if err != nil {
		t.Fatal(err)
	}
	if r.Problems() != 0 {
		t.Fatalf("Check found %d problems: %+v", r.Problems(), r)
	}
}

// revision is etcd's current revision.
func (e *env) revision(t *testing.T) int64 {
	t.Helper()
	rev, err := e.c.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
