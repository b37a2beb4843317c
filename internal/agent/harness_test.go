package agent

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
)

// testNode is a calyx-node running in-process (run, as Run does) against a
// test etcd, serving its local API on a socket in a temporary directory.
type testNode struct {
	cfg    Config
	client *localapi.Client
	stop   func() error
}

// startNode starts calyx-node "node-a" over etcd (nil: mod sets
// Config.Etcd) with long resync and GC periods unless mod changes them,
// and stops it when the test ends.
func startNode(t *testing.T, etcd *datastore.Embedded, h hooks, mod func(*Config)) *testNode {
	t.Helper()
	cfg := Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.10/24",
		Socket:  filepath.Join(t.TempDir(), "calyx.sock"),
		DataDir: t.TempDir(),
		GCGrace: time.Hour, ResyncInterval: time.Hour,
	}
	if etcd != nil { // else mod names the datastore
		cfg.Etcd = testnet.ClientConfig(etcd)
	}
	if mod != nil {
		mod(&cfg)
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, testnet.Logger(t), h) }()
	n := &testNode{cfg: cfg, client: localapi.NewClient(cfg.Socket)}
	n.stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("calyx-node stopped with %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the cleanup's stop, which waits for it
		t.Fatalf("calyx-node exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("calyx-node did not become ready")
	}
	return n
}

// createPool stores the IP pool "pool4", 10.65.0.0/16.
func createPool(t *testing.T, c *datastore.Client) {
	t.Helper()
	p := testnet.IPPool("pool4", "10.65.0.0/16", 0)
	p.SetDefaults()
	if _, err := c.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

// apiStatus returns the HTTP status of an API error (0: none).
func apiStatus(err error) int {
	var e *localapi.APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func getEndpoint(t *testing.T, c *datastore.Client, name string) *api.WorkloadEndpoint {
	t.Helper()
	r, err := c.Get(t.Context(), wepKind(), name)
	if datastore.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return r.(*api.WorkloadEndpoint)
}

func attachment(cid, ifname string) localapi.Attachment {
	return localapi.Attachment{Network: "net1", ContainerID: cid, IfName: ifname}
}

// startTestEtcd starts etcd with one pool and returns a client.
func startTestEtcd(t *testing.T) (*datastore.Embedded, *datastore.Client) {
	t.Helper()
	e := testnet.StartEtcd(t)
	c := testnet.NewClient(t, e)
	createPool(t, c)
	return e, c
}

// leftAfterDel returns the kernel lines an endpoint's DEL should have
// removed: all but the global ip_forward sysctl and the blackhole routes
// of this node's blocks, which stay while the node holds them.
func leftAfterDel(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return strings.HasPrefix(l, "sysctl net/ipv4/ip_forward") || strings.HasPrefix(l, "route blackhole ") && strings.HasSuffix(l, " proto 80")
	})
}
