package datastore_test

import (
	"context"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }

// setup starts an etcd for t and connects a client to it.
func setup(t *testing.T) *datastore.Client {
	t.Helper()
	return testnet.NewClient(t, testnet.StartEtcd(t))
}

// testCtx bounds a test's datastore calls so that a bug hangs for 30 s at
// most, not until the package timeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func kind(t *testing.T, name string) api.KindInfo {
	t.Helper()
	k, ok := api.LookupKind(name)
	if !ok {
		t.Fatalf("no kind %q", name)
	}
	return k
}

func pool(name, cidr string, labels map[string]string) *api.IPPool {
	p := testnet.IPPool(name, cidr, 26)
	p.Metadata.Labels = labels
	return p
}

func netSet(name string, nets ...string) *api.GlobalNetworkSet {
	return &api.GlobalNetworkSet{
		TypeMeta: api.TypeMeta{Kind: api.KindGlobalNetworkSet, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.GlobalNetworkSetSpec{Nets: nets},
	}
}

func mustCreate(t *testing.T, c *datastore.Client, r api.Resource) api.Resource {
	t.Helper()
	out, err := c.Create(testCtx(t), r)
	if err != nil {
		t.Fatalf("create %s %q: %v", r.GetKind(), r.GetObjectMeta().Name, err)
	}
	return out
}

func cidrOf(r api.Resource) string { return r.(*api.IPPool).Spec.CIDR }

func mustRevision(t *testing.T, c *datastore.Client) int64 {
	t.Helper()
	rev, err := c.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
