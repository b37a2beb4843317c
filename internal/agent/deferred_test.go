package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
)

// journal returns the handles in the data directory's pending-releases
// file (none when it is missing).
func journal(t *testing.T, dataDir string) []string {
	t.Helper()
	d, err := loadDeferredReleases(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return d.handles()
}

// ipamAddAddrs runs an IPAM ADD of a with one IPv4 address and returns
// the addresses it answered.
func ipamAddAddrs(t *testing.T, n *testNode, a localapi.Attachment) []netip.Addr {
	t.Helper()
	var resp localapi.IPAMAddResponse
	if err := n.client.Do(t.Context(), localapi.PathIPAMAdd, localapi.IPAMAddRequest{Attachment: a, IPAM: localapi.IPAMRequest{AssignIPv4: true}}, &resp); err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, ip := range resp.IPs {
		addrs = append(addrs, netip.MustParsePrefix(ip.Address).Addr())
	}
	return addrs
}

// outage starts calyx-node over a stoppable etcd with one pool, IPAM-adds
// a, stops etcd, waits for calyx-node to notice, and IPAM-deletes a, which
// must succeed.
func outage(t *testing.T, a localapi.Attachment, h hooks) (datastore.EmbeddedConfig, *testNode) {
	t.Helper()
	ecfg := testnet.EtcdConfig(t)
	etcd := testnet.StartEtcdWith(t, ecfg)
	createPool(t, testnet.NewClient(t, etcd))
	h.kernel = route.NewFake()
	n := startNode(t, etcd, h, func(c *Config) { c.DatastoreTimeout = 10 * time.Minute })
	if got := ipamAddAddrs(t, n, a); len(got) != 1 {
		t.Fatalf("IPAM ADD answered %v, want one address", got)
	}
	if err := etcd.Close(); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "/readyz to report the outage", func() bool {
		return n.client.Do(t.Context(), localapi.PathReadyz, struct{}{}, nil) != nil
	})
	if err := timedDo(t, n, localapi.PathIPAMDel, localapi.IPAMDelRequest{Attachment: a}); err != nil {
		t.Fatalf("IPAM DEL during the outage: %v, want success", err)
	}
	if got := journal(t, n.cfg.DataDir); !slices.Equal(got, []string{a.Handle()}) {
		t.Fatalf("pending releases after the DEL: %q, want %q", got, a.Handle())
	}
	return ecfg, n
}

// waitReleased waits for a's addresses to be released and the journal to
// empty.
func waitReleased(t *testing.T, etcd *datastore.Embedded, dataDir string, a localapi.Attachment) {
	t.Helper()
	alloc := ipam.New(testnet.NewClient(t, etcd))
	testnet.WaitFor(t, "the queued release to be done", func() bool {
		_, err := alloc.IPsByHandle(t.Context(), a.Handle())
		return ipam.IsNotFound(err) && len(journal(t, dataDir)) == 0
	})
}

// An IPAM DEL (calyx-ipam under another plugin) during an outage succeeds;
// its release is queued and done once etcd is back.
func TestIPAMDelDuringOutageIsQueued(t *testing.T) {
	a := attachment("c-bridged", "eth0")
	ecfg, n := outage(t, a, hooks{})
	etcd := testnet.StartEtcdWith(t, ecfg)
	waitReleased(t, etcd, n.cfg.DataDir, a)
}

// The queue survives a restart of calyx-node.
func TestIPAMQueuedReleaseSurvivesRestart(t *testing.T) {
	a := attachment("c-restart", "eth0")
	ecfg, n := outage(t, a, hooks{})
	if err := n.stop(); err != nil {
		t.Fatalf("stopping calyx-node during the outage: %v", err)
	}
	if got := journal(t, n.cfg.DataDir); !slices.Equal(got, []string{a.Handle()}) {
		t.Fatalf("pending releases after the stop: %q, want %q", got, a.Handle())
	}
	etcd := testnet.StartEtcdWith(t, ecfg)
	n2 := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, func(c *Config) { c.DataDir = n.cfg.DataDir })
	waitReleased(t, etcd, n2.cfg.DataDir, a)
}

// An IPAM ADD of a handle whose release is queued does that release
// first: it gets a fresh allocation, which nothing releases afterwards.
func TestIPAMAddCompletesQueuedRelease(t *testing.T) {
	a := attachment("c-again", "eth0")
	// The queue is tried only at start: the ADD comes first.
	ecfg, n := outage(t, a, hooks{releaseInterval: time.Hour})
	etcd := testnet.StartEtcdWith(t, ecfg)
	testnet.WaitFor(t, "/readyz to report ready again", func() bool {
		return n.client.Do(t.Context(), localapi.PathReadyz, struct{}{}, nil) == nil
	})
	got := ipamAddAddrs(t, n, a)
	if len(got) != 1 {
		t.Fatalf("IPAM ADD after the outage answered %v, want one address", got)
	}
	if j := journal(t, n.cfg.DataDir); len(j) != 0 {
		t.Errorf("pending releases after the ADD: %q, want none", j)
	}
	alloc := ipam.New(testnet.NewClient(t, etcd))
	held, err := alloc.IPsByHandle(t.Context(), a.Handle())
	if err != nil || !slices.Equal(held, got) {
		t.Errorf("the handle holds %v (%v) after the ADD, want exactly %v", held, err, got)
	}
}

// A damaged journal stops calyx-node with an error naming the file and
// line.
func TestLoadDeferredReleasesRejectsBadLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, pendingReleasesFile)
	if err := os.WriteFile(path, []byte("{\"handle\":\"net1.a.eth0\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadDeferredReleases(dir)
	if err == nil || !strings.Contains(err.Error(), path+" line 2") {
		t.Fatalf("loading %s: %v, want an error naming line 2", path, err)
	}
}

// The journal round-trips through its file.
func TestDeferredReleasesPersist(t *testing.T) {
	dir := t.TempDir()
	d, err := loadDeferredReleases(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	for i, h := range []string{"net1.b.eth0", "net1.a.eth0", "net1.c.eth0"} {
		if err := d.add(h, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.remove("net1.a.eth0"); err != nil {
		t.Fatal(err)
	}
	if got, want := journal(t, dir), []string{"net1.b.eth0", "net1.c.eth0"}; !slices.Equal(got, want) {
		t.Errorf("reloaded journal: %q, want %q", got, want)
	}
}
