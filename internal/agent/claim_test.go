package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
)

// runToExit runs calyx-node with cfg until it exits by itself (30 s at
// most, the bound an operator is promised) and returns its error.
func runToExit(t *testing.T, cfg Config, h hooks) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := run(ctx, cfg, testnet.Logger(t), h)
	if ctx.Err() != nil {
		t.Fatalf("calyx-node did not exit within 30 s (returned %v)", err)
	}
	return err
}

// etcdState is what a calyx-node of node-a owns in etcd: its endpoints and
// IPAM handles, and the Node.
func etcdState(t *testing.T, store *datastore.Client, handles ...string) string {
	t.Helper()
	var b strings.Builder
	weps, _, err := store.List(t.Context(), wepKind(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range weps {
		j, _ := json.Marshal(w)
		b.WriteString(string(j) + "\n")
	}
	node, err := store.Get(t.Context(), mustKindInfo(api.KindNode), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(node)
	b.WriteString(string(j) + "\n")
	alloc := ipam.New(store)
	for _, h := range handles {
		ips, err := alloc.IPsByHandle(t.Context(), h)
		if err != nil {
			t.Fatalf("handle %s: %v", h, err)
		}
		fmt.Fprintln(&b, h, ips)
	}
	return b.String()
}

// The data-loss scenario of issue 7: node-a runs on host A with two
// containers talking to each other; a second calyx-node is started on host
// B with the same name against the same etcd. It must exit at once with a
// message naming the node and its holder, write nothing, and leave A's
// endpoints, addresses, routes and traffic alone.
func TestSecondNodeWithALiveNameExits(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("needs ping (apt-get install iputils-ping)")
	}
	etcd, store := startTestEtcd(t)
	hostA := newHost(t)
	n := startNode(t, etcd, hooks{}, func(c *Config) {
		c.Netns = hostA.Path()
		c.NodeIPv4 = "192.0.2.1/24"
		c.ResyncInterval = 100 * time.Millisecond
		c.GCGrace = 200 * time.Millisecond
	})
	a := attach(t, n, hostA, "ctr-a")
	b := attach(t, n, hostA, "ctr-b")
	mustPing(t, a, b.ip)

	beforeKernel := routingText(t, hostA)
	beforeEtcd := etcdState(t, store, a.att.Handle(), b.att.Handle())
	beforeRev := mustRevision(t, store)

	hostB := newHost(t)
	cfgB := Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.99/24", Netns: hostB.Path(),
		Etcd:   testnet.ClientConfig(etcd),
		Socket: filepath.Join(t.TempDir(), "calyx.sock"), DataDir: t.TempDir(),
		GCGrace: 200 * time.Millisecond, ResyncInterval: 100 * time.Millisecond,
	}
	err := runToExit(t, cfgB, hooks{})
	if !IsNodeNameHeld(err) {
		t.Fatalf("second calyx-node with node-a's name: %v, want IsNodeNameHeld", err)
	}
	for _, want := range []string{"node node-a is held by a live calyx-node at 192.0.2.1", "host id ", "since ", "pick another --name", "expires 15s after it stopped"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if rev := mustRevision(t, store); rev != beforeRev {
		t.Errorf("the refused calyx-node wrote to etcd: revision %d -> %d", beforeRev, rev)
	}

	// A goes on for several of its GC periods: nothing of it changed.
	time.Sleep(time.Second)
	mustPing(t, a, b.ip)
	mustPing(t, b, a.ip)
	if d := cmp.Diff(beforeEtcd, etcdState(t, store, a.att.Handle(), b.att.Handle())); d != "" {
		t.Errorf("node-a's endpoints, node or addresses changed (-before +after):\n%s", d)
	}
	if d := cmp.Diff(beforeKernel, routingText(t, hostA)); d != "" {
		t.Errorf("host A's kernel state changed (-before +after):\n%s", d)
	}
	// And the next ADD on A gets a fresh address.
	c := attach(t, n, hostA, "ctr-c")
	if c.ip == a.ip || c.ip == b.ip {
		t.Errorf("new container got %s, held by a running container", c.ip)
	}
}

// routingText is kernelText without IPv6 link-local lines, which the
// kernel adds by itself once duplicate address detection ends.
func routingText(t *testing.T, host cnins.NetNS) string {
	t.Helper()
	lines := strings.Split(kernelText(t, host), "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "fe80:") }), "\n")
}

func mustRevision(t *testing.T, c *datastore.Client) int64 {
	t.Helper()
	rev, err := c.Revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// The same host (same data directory, so the same host-id) restarting
// after calyx-node stopped without releasing its claim takes the name back
// at once, although the lease has an hour left; another host may not.
func TestSameHostReclaimsAtOnce(t *testing.T) {
	etcd, store := startTestEtcd(t)
	dir := t.TempDir()
	h := hooks{kernel: route.NewFake(), policy: fakeNftables(), claimTTL: time.Hour}
	n := startNode(t, etcd, h, func(c *Config) { c.DataDir = dir })
	_, rev1, err := store.GetRaw(t.Context(), nodeClaimKey("node-a"))
	if err != nil || rev1 == 0 {
		t.Fatalf("claim after the first start: rev %d, %v", rev1, err)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := store.GetRaw(t.Context(), nodeClaimKey("node-a")); v == nil {
		t.Fatal("a stopped calyx-node released its claim; want it left to expire")
	}
	id, err := os.ReadFile(filepath.Join(dir, hostIDFile))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, hostIDFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("host-id mode %v, want 0600", st.Mode().Perm())
	}
	// startNode fails the test unless it becomes ready within 60 s, far
	// below the lease's hour.
	startNode(t, etcd, h, func(c *Config) { c.DataDir = dir })
	v, rev2, err := store.GetRaw(t.Context(), nodeClaimKey("node-a"))
	if err != nil || rev2 <= rev1 || !strings.Contains(string(v), strings.TrimSpace(string(id))) {
		t.Errorf("claim after the restart: %s at %d (was %d), %v; want rewritten with host id %s", v, rev2, rev1, err, id)
	}
	// Another data directory is another host.
	err = runToExit(t, Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.99/24", Etcd: testnet.ClientConfig(etcd),
		Socket: filepath.Join(t.TempDir(), "calyx.sock"), DataDir: t.TempDir(),
	}, hooks{kernel: route.NewFake(), policy: fakeNftables()})
	if !IsNodeNameHeld(err) {
		t.Errorf("another host: %v, want IsNodeNameHeld", err)
	}
}

// The expired claim of another host (that host stopped and never came
// back) is taken.
func TestExpiredClaimOfAnotherHostIsTaken(t *testing.T) {
	etcd, store := startTestEtcd(t)
	other, _ := json.Marshal(nodeHolder{HostID: "0123456789abcdef0123456789abcdef", Address: "192.0.2.50", Since: "2026-12-01T00:00:00Z"})
	if _, err := store.Claim(t.Context(), datastore.ClaimSpec{Key: nodeClaimKey("node-a"), Value: other, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.10/24", Etcd: testnet.ClientConfig(etcd),
		Socket: filepath.Join(t.TempDir(), "calyx.sock"), DataDir: t.TempDir(),
	}
	if err := runToExit(t, cfg, hooks{kernel: route.NewFake(), policy: fakeNftables()}); !IsNodeNameHeld(err) || !strings.Contains(err.Error(), "192.0.2.50") {
		t.Fatalf("while the other host's claim lives: %v, want held by 192.0.2.50", err)
	}
	testnet.WaitFor(t, "the other host's claim to expire", func() bool {
		v, _, err := store.GetRaw(t.Context(), nodeClaimKey("node-a"))
		return err == nil && v == nil
	})
	startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
}

// A calyx-node whose claim another host took at run time (its lease
// expired during a partition) stops with a clear error instead of fighting
// for the name, and writes nothing for the node any more.
func TestClaimLostAtRunTimeStops(t *testing.T) {
	etcd, store := startTestEtcd(t)
	cfg := Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.10/24", Etcd: testnet.ClientConfig(etcd),
		Socket: filepath.Join(t.TempDir(), "calyx.sock"), DataDir: t.TempDir(),
		GCGrace: time.Hour, ResyncInterval: time.Hour,
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), cfg, testnet.Logger(t), hooks{kernel: route.NewFake(), policy: fakeNftables()})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	other, _ := json.Marshal(nodeHolder{HostID: "0123456789abcdef0123456789abcdef", Address: "192.0.2.50", Since: "2026-12-01T00:00:00Z"})
	if ok, _, err := store.CAS(t.Context(), nil, []datastore.RawPut{{Key: nodeClaimKey("node-a"), Value: other}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errClaimLost) || !strings.Contains(err.Error(), "192.0.2.50") {
			t.Errorf("calyx-node stopped with %v, want the claim lost to 192.0.2.50", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("calyx-node did not stop after losing its claim")
	}
	if v, _, _ := store.GetRaw(t.Context(), nodeClaimKey("node-a")); string(v) != string(other) {
		t.Errorf("claim %s, want the other host's left alone", v)
	}
}

// switchClaim is a node claim a test holds or loses.
type switchClaim struct{ lost atomic.Bool }

func (c *switchClaim) Check(context.Context) error {
	if c.lost.Load() {
		return &datastore.ClaimLostError{Key: nodeClaimKey("node-a"), Holder: []byte("host-b")}
	}
	return nil
}

// The endpoint collector releases nothing while this process does not
// hold its node's claim, and the IPAM allocator's writes fail once the
// claim is gone.
func TestGCNeedsTheClaim(t *testing.T) {
	_, store := startTestEtcd(t)
	ctx := t.Context()
	claim, err := store.Claim(ctx, datastore.ClaimSpec{Key: nodeClaimKey("node-a"), Value: []byte(`{"hostID":"a"}`), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fenced := fencedStore{Client: store, fence: claim.Fence}
	alloc := ipam.New(fenced)
	v := newView("node-a", time.Now)
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := testnet.Logger(t)
	sc := &switchClaim{}
	sc.lost.Store(true)
	rr := route.New(route.NewFake(), log)
	svc := &service{
		node: "node-a", log: log, store: fenced, alloc: alloc, host: rr,
		dp: startLoop(t, rr, v, m), view: v, locks: newHandleLocks(), adds: newPendingAdds(processAlive), m: m, mtu: 1500, now: time.Now, claim: sc,
	}
	// An attachment whose veth never appeared (the fake kernel has none).
	att := attachment("ctr-gone", "eth0")
	if _, err := svc.add(ctx, addReq(att)); err != nil {
		t.Fatal(err)
	}
	ep := svc.view.endpoints()
	if len(ep) != 1 {
		t.Fatalf("endpoints %d", len(ep))
	}
	name := ep[0].Metadata.Name
	grace := time.Minute
	col := newCollector(svc, log, grace, time.Second)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		col.pass(ctx, t0.Add(time.Duration(i)*grace))
	}
	if getEndpoint(t, store, name) == nil {
		t.Fatal("the collector released an endpoint without holding the node's claim")
	}
	if ips, err := ipam.New(store).IPsByHandle(ctx, att.Handle()); err != nil || len(ips) != 1 {
		t.Fatalf("addresses after GC without the claim: %v, %v", ips, err)
	}
	// Holding the claim, the same passes release it: the test can fail.
	sc.lost.Store(false)
	for i := 3; i < 5; i++ {
		col.pass(ctx, t0.Add(time.Duration(i)*grace))
	}
	if getEndpoint(t, store, name) != nil {
		t.Error("the collector kept an endpoint whose veth is gone while holding the claim")
	}

	// The allocator's writes and endpoint deletes are fenced by the claim:
	// once another holder has the key, they fail and write nothing.
	kept := attachment("ctr-kept", "eth0")
	keptAdd, err := svc.add(ctx, addReq(kept))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := store.CAS(ctx, nil, []datastore.RawPut{{Key: nodeClaimKey("node-a"), Value: []byte(`{"hostID":"b"}`)}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	before := mustRevision(t, store)
	_, err = alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "h-after-loss", Node: "node-a", Attrs: map[string]string{"node": "node-a"}})
	if !errors.Is(err, errClaimLost) {
		t.Errorf("allocation after the claim was lost: %v, want errClaimLost", err)
	}
	if err := svc.release(ctx, kept.Handle(), getEndpoint(t, store, keptAdd.Endpoint)); !errors.Is(err, errClaimLost) {
		t.Errorf("release after the claim was lost: %v, want errClaimLost", err)
	}
	if rev := mustRevision(t, store); rev != before {
		t.Errorf("allocation and release after the claim was lost wrote: revision %d -> %d", before, rev)
	}
	if getEndpoint(t, store, keptAdd.Endpoint) == nil {
		t.Error("an endpoint was deleted after the claim was lost")
	}
}

// A fenced write refused because the claim lapsed (its key is gone, and
// keepClaim is taking it again) is "try again later"; one refused because
// another holder has the claim is not.
func TestClaimLapsedIsRetryable(t *testing.T) {
	key := nodeClaimKey("node-a")
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   uint
	}{
		{"lapsed", fmt.Errorf("writing IPAM state: %w", fencedError(&datastore.ClaimLostError{Key: key})), 503, cniTryAgainLater},
		{"taken by another host", fmt.Errorf("writing IPAM state: %w", fencedError(&datastore.ClaimLostError{Key: key, Holder: []byte(`{"hostID":"b"}`)})), 500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := classify(tc.err); status != tc.status || code != tc.code {
				t.Errorf("classify(%v) = %d, %d; want %d, %d", tc.err, status, code, tc.status, tc.code)
			}
		})
	}
}

// While the node claim lapsed, ADD fails with "try again later" and DEL
// removes the host side and succeeds, leaving the rest to garbage
// collection; once another host holds the claim, DEL fails. A delete
// fenced by a claim that was taken again since uses the new fence.
func TestClaimLapsedAddAndDel(t *testing.T) {
	_, store := startTestEtcd(t)
	ctx := t.Context()
	key := nodeClaimKey("node-a")
	claim := claimAsHostA(t, store, key)
	var stale atomic.Bool // the next fence read is an outdated one
	fence := func() datastore.Cond {
		f := claim.Fence()
		if stale.Swap(false) {
			f.ModRevision--
		}
		return f
	}
	fenced := fencedStore{Client: store, fence: fence}
	v := newView("node-a", time.Now)
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := testnet.Logger(t)
	rr := route.New(route.NewFake(), log)
	svc := &service{
		node: "node-a", log: log, store: fenced, alloc: ipam.New(fenced), host: rr,
		dp: startLoop(t, rr, v, m), view: v, locks: newHandleLocks(), adds: newPendingAdds(processAlive), m: m, mtu: 1500, now: time.Now, claim: claim,
	}
	added := map[string]string{} // container -> endpoint
	for _, cid := range []string{"ctr-stale", "ctr-lapsed", "ctr-lost"} {
		resp, err := svc.add(ctx, addReq(attachment(cid, "eth0")))
		if err != nil {
			t.Fatal(err)
		}
		added[cid] = resp.Endpoint
	}
	// A fence read just before the claim was taken again: the delete
	// goes through with the current one.
	stale.Store(true)
	if err := svc.del(ctx, localapi.DelRequest{Attachment: attachment("ctr-stale", "eth0")}); err != nil {
		t.Errorf("DEL with an outdated fence of a held claim: %v", err)
	}
	if getEndpoint(t, store, added["ctr-stale"]) != nil {
		t.Error("DEL with an outdated fence of a held claim left the endpoint")
	}

	// The lease expired in an outage: the key is gone.
	if ok, _, err := store.CAS(ctx, nil, nil, []string{key}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	_, err = svc.add(ctx, addReq(attachment("ctr-new", "eth0")))
	if status, code := classify(err); !errors.Is(err, errClaimLapsed) || code != cniTryAgainLater || status != 503 {
		t.Errorf("ADD while the claim lapsed: %v (HTTP %d, code %d), want try again later (503, 11)", err, status, code)
	}
	if err := svc.del(ctx, localapi.DelRequest{Attachment: attachment("ctr-lapsed", "eth0")}); err != nil {
		t.Errorf("DEL while the claim lapsed: %v, want success", err)
	}
	if getEndpoint(t, store, added["ctr-lapsed"]) == nil {
		t.Error("DEL while the claim lapsed deleted the endpoint: the fence did not hold")
	}

	// Another host took the claim: DEL fails, and is not retryable.
	if ok, _, err := store.CAS(ctx, nil, []datastore.RawPut{{Key: key, Value: []byte(`{"hostID":"b"}`)}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	err = svc.del(ctx, localapi.DelRequest{Attachment: attachment("ctr-lost", "eth0")})
	if _, code := classify(err); !errors.Is(err, errClaimLost) || code == cniTryAgainLater {
		t.Errorf("DEL after another host took the claim: %v (code %d), want the claim lost, not retryable", err, code)
	}
	_, err = svc.add(ctx, addReq(attachment("ctr-new", "eth0")))
	if _, code := classify(err); !errors.Is(err, errClaimLost) || code == cniTryAgainLater {
		t.Errorf("ADD after another host took the claim: %v (code %d), want the claim lost, not retryable", err, code)
	}
}

// hookAlloc is an allocator that calls assigning before each AutoAssign:
// a test changes the claim between an ADD's first writes (its network's
// profile) and the transaction that allocates its addresses and writes
// its endpoint.
type hookAlloc struct {
	allocator
	assigning func()
}

func (a *hookAlloc) AutoAssign(ctx context.Context, args ipam.AutoAssignArgs) (ipam.AssignResult, error) {
	if a.assigning != nil {
		a.assigning()
	}
	return a.allocator.AutoAssign(ctx, args)
}

// Endpoint (and profile) creates and updates are fenced by the node claim
// like the allocator's writes: an ADD whose claim lapsed or was taken by
// another host after its addresses were allocated writes no endpoint and
// no profile, and fails with "try again later" for a lapsed claim, for
// good for a lost one; recording an endpoint's MAC (READY) after the
// claim was lost writes nothing.
func TestEndpointWritesNeedTheClaim(t *testing.T) {
	_, store := startTestEtcd(t)
	ctx := t.Context()
	key := nodeClaimKey("node-a")
	claim := claimAsHostA(t, store, key)
	var current atomic.Pointer[datastore.Claim] // the claim this process holds
	current.Store(claim)
	fenced := fencedStore{Client: store, fence: func() datastore.Cond { return current.Load().Fence() }}
	v := newView("node-a", time.Now)
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := testnet.Logger(t)
	alloc := &hookAlloc{allocator: ipam.New(fenced)}
	rr := route.New(route.NewFake(), log)
	svc := &service{
		node: "node-a", log: log, store: fenced, alloc: alloc, host: rr,
		dp: startLoop(t, rr, v, m), view: v, locks: newHandleLocks(), adds: newPendingAdds(processAlive), m: m, mtu: 1500, now: time.Now, claim: claim,
	}
	held, err := svc.add(ctx, addReq(attachment("ctr-held", "eth0")))
	if err != nil {
		t.Fatal(err)
	}
	endpoints := func() []string {
		t.Helper()
		list, _, err := store.List(ctx, wepKind(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range list {
			names = append(names, r.GetObjectMeta().Name)
		}
		return names
	}
	if got := endpoints(); !slices.Equal(got, []string{held.Endpoint}) {
		t.Fatalf("endpoints after an ADD holding the claim: %v", got)
	}

	// The claim lapses (its key is gone) before the allocation of an ADD
	// on a new network: its addresses and endpoint, one transaction, are
	// not written (its profile was, while the claim held).
	var before int64
	alloc.assigning = func() {
		if ok, _, err := store.CAS(ctx, nil, nil, []string{key}); err != nil || !ok {
			t.Error("deleting the claim:", ok, err)
		}
		before = mustRevision(t, store)
	}
	lapsed := addReq(attachment("ctr-lapsed", "eth0"))
	lapsed.Network = "net2"
	_, err = svc.add(ctx, lapsed)
	if status, code := classify(err); !errors.Is(err, errClaimLapsed) || status != 503 || code != cniTryAgainLater {
		t.Errorf("ADD whose claim lapsed before its allocation: %v (HTTP %d, code %d), want try again later (503, 11)", err, status, code)
	}
	if rev := mustRevision(t, store); rev != before {
		t.Errorf("ADD whose claim lapsed wrote after the claim lapsed: revision %d -> %d", before, rev)
	}

	// Taken again, then taken over by another host before the allocation
	// of an ADD: nothing is written, and the ADD fails for good.
	again := claimAsHostA(t, store, key)
	current.Store(again)
	alloc.assigning = func() {
		if ok, _, err := store.CAS(ctx, nil, []datastore.RawPut{{Key: key, Value: []byte(`{"hostID":"b"}`)}}, nil); err != nil || !ok {
			t.Error("replacing the claim:", ok, err)
		}
		before = mustRevision(t, store)
	}
	_, err = svc.add(ctx, addReq(attachment("ctr-lost", "eth0")))
	if status, code := classify(err); !errors.Is(err, errClaimLost) || errors.Is(err, errClaimLapsed) || status != 500 || code != 0 {
		t.Errorf("ADD whose claim was taken over before its allocation: %v (HTTP %d, code %d), want the claim lost (500, 0)", err, status, code)
	}
	if rev := mustRevision(t, store); rev != before {
		t.Errorf("ADD whose claim was taken over wrote after it was: revision %d -> %d", before, rev)
	}
	if got := endpoints(); !slices.Equal(got, []string{held.Endpoint}) {
		t.Errorf("endpoints after ADDs without the claim: %v, want only %s", got, held.Endpoint)
	}

	alloc.assigning = nil
	// READY's update of the endpoint's MAC writes nothing either.
	w := getEndpoint(t, store, held.Endpoint)
	if err := svc.recordMAC(ctx, w, "02:00:00:00:00:01"); !errors.Is(err, errClaimLost) {
		t.Errorf("recording a MAC after the claim was taken over: %v, want the claim lost", err)
	}
	if rev := mustRevision(t, store); rev != before {
		t.Errorf("recording a MAC after the claim was taken over wrote: revision %d -> %d", before, rev)
	}
}

// Node registration through the fenced store (fencedStore satisfies
// nodeStore) writes the Node while the claim holds and nothing once
// another host took it: the create and update of registerNode are fenced.
func TestRegisterNodeFenced(t *testing.T) {
	_, store := startTestEtcd(t)
	ctx := t.Context()
	key := nodeClaimKey("node-a")
	claim := claimAsHostA(t, store, key)
	fenced := fencedStore{Client: store, fence: claim.Fence}
	if _, err := registerNode(ctx, fenced, Config{NodeName: "node-a", NodeIPv4: "192.0.2.1/24"}); err != nil {
		t.Fatalf("registering the node holding the claim: %v", err)
	}
	if ok, _, err := store.CAS(ctx, nil, []datastore.RawPut{{Key: key, Value: []byte(`{"hostID":"b"}`)}}, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	before := mustRevision(t, store)
	if _, err := registerNode(ctx, fenced, Config{NodeName: "node-a", NodeIPv4: "192.0.2.2/24"}); !errors.Is(err, errClaimLost) {
		t.Errorf("updating the node after the claim was taken over: %v, want the claim lost", err)
	}
	if _, err := registerNode(ctx, fenced, Config{NodeName: "node-b", NodeIPv4: "192.0.2.3/24"}); !errors.Is(err, errClaimLost) {
		t.Errorf("creating a node after the claim was taken over: %v, want the claim lost", err)
	}
	if rev := mustRevision(t, store); rev != before {
		t.Errorf("registration after the claim was taken over wrote: revision %d -> %d", before, rev)
	}
}

// claimAsHostA takes the claim key for host "a" on an hour's lease.
func claimAsHostA(t *testing.T, store *datastore.Client, key string) *datastore.Claim {
	t.Helper()
	c, err := store.Claim(t.Context(), datastore.ClaimSpec{Key: key, Value: []byte(`{"hostID":"a"}`), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
