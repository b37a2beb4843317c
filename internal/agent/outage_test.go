package agent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/prometheus/client_golang/prometheus"
)

// outageBound is how long a request may take during an outage before the
// test calls it a hang: far above the datastore timeout, far below the
// plugin's own 60 s.
const outageBound = 30 * time.Second

// apiErrorBody returns the body of a local API error (zero: none).
func apiErrorBody(err error) localapi.Error {
	var e *localapi.APIError
	if errors.As(err, &e) {
		return e.Body
	}
	return localapi.Error{}
}

// timedDo runs a local API call and fails the test when it outlives
// outageBound.
func timedDo(t *testing.T, n *testNode, path string, req any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), outageBound)
	defer cancel()
	err := n.client.Do(ctx, path, req, nil)
	if ctx.Err() != nil {
		t.Fatalf("%s did not answer within %s during the outage", path, outageBound)
	}
	return err
}

// With its etcd stopped, calyx-node says so (/readyz, the metrics), fails
// ADD quickly with code 11 naming the datastore's state, and lets DEL
// remove the host side; once etcd is back it is ready again and garbage
// collection releases what the DEL could not.
func TestEtcdOutage(t *testing.T) {
	ecfg := testnet.EtcdConfig(t)
	etcd := testnet.StartEtcdWith(t, ecfg)
	store := testnet.NewClient(t, etcd)
	createPool(t, store)
	fake := route.NewFake()
	reg := prometheus.NewRegistry()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, func(c *Config) {
		c.Registry = reg
		// Far above outageBound: the requests below must not wait for it,
		// the health monitor already knows etcd is down.
		c.DatastoreTimeout = 10 * time.Minute
		c.GCGrace = 200 * time.Millisecond
	})
	ctx := t.Context()
	att := attachment("c-outage", "eth0")
	var add localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	fake.AddLink(add.HostIfName)
	if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: add.ContainerMAC}, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.client.Do(ctx, localapi.PathReadyz, struct{}{}, nil); err != nil {
		t.Fatalf("/readyz before the outage: %v", err)
	}
	if v := metricValue(t, reg, "calyx_datastore_reachable"); v != 1 {
		t.Errorf("calyx_datastore_reachable before the outage = %v, want 1", v)
	}

	if err := etcd.Close(); err != nil {
		t.Fatal(err)
	}
	var readyErr error
	testnet.WaitFor(t, "/readyz to report the outage", func() bool {
		readyErr = n.client.Do(ctx, localapi.PathReadyz, struct{}{}, nil)
		return readyErr != nil
	})
	if b := apiErrorBody(readyErr); b.Code != cniTryAgainLater || !strings.Contains(b.Message, "unreachable") || !strings.Contains(b.Message, ecfg.ClientURL) {
		t.Errorf("/readyz during the outage: %v, want code 11 naming %s unreachable", readyErr, ecfg.ClientURL)
	}
	if v := metricValue(t, reg, "calyx_datastore_reachable"); v != 0 {
		t.Errorf("calyx_datastore_reachable during the outage = %v, want 0", v)
	}
	if v := metricValue(t, reg, "calyx_datastore_in_sync"); v != 0 {
		t.Errorf("calyx_datastore_in_sync during the outage = %v, want 0", v)
	}

	// ADD: code 11 at once, naming the state.
	err := timedDo(t, n, localapi.PathCNIAdd, addReq(attachment("c-new", "eth0")))
	if b := apiErrorBody(err); apiStatus(err) != http.StatusServiceUnavailable || b.Code != cniTryAgainLater ||
		!strings.Contains(b.Message, "etcd at "+ecfg.ClientURL+" unreachable") {
		t.Errorf("ADD during the outage: %v (status %d, code %d), want 503, code 11, etcd unreachable", err, apiStatus(err), b.Code)
	}

	// DEL: the host side goes, and the DEL succeeds.
	if err := timedDo(t, n, localapi.PathCNIDel, localapi.DelRequest{Attachment: att}); err != nil {
		t.Errorf("DEL during the outage: %v, want success", err)
	}
	if ok, _ := route.New(fake, testnet.Logger(t)).HasLink(ctx, add.HostIfName); ok {
		t.Errorf("the host veth %s survived the DEL", add.HostIfName)
	}
	if got := leftAfterDel(fake.Render()); len(got) > 0 {
		t.Errorf("kernel after DEL during the outage: %q", got)
	}

	// etcd back: ready again, and GC releases the endpoint and addresses.
	etcd = testnet.StartEtcdWith(t, ecfg)
	testnet.WaitFor(t, "/readyz to report ready again", func() bool {
		return n.client.Do(ctx, localapi.PathReadyz, struct{}{}, nil) == nil
	})
	testnet.WaitFor(t, "calyx_datastore_in_sync to return to 1", func() bool {
		return metricValue(t, reg, "calyx_datastore_in_sync") == 1
	})
	if v := metricValue(t, reg, "calyx_datastore_reachable"); v != 1 {
		t.Errorf("calyx_datastore_reachable after the outage = %v, want 1", v)
	}
	check := testnet.NewClient(t, etcd)
	alloc := ipam.New(check)
	testnet.WaitFor(t, "garbage collection to release the endpoint and its addresses", func() bool {
		_, gerr := check.Get(ctx, wepKind(), add.Endpoint)
		_, ierr := alloc.IPsByHandle(ctx, att.Handle())
		return datastore.IsNotFound(gerr) && ipam.IsNotFound(ierr)
	})
	// The collector counts the release once its writes are done, so the
	// count may lag what the datastore already shows.
	testnet.WaitFor(t, "calyx_gc_released_total{what=endpoint} to count the release", func() bool {
		return metricValue(t, reg, "calyx_gc_released_total", "what", "endpoint") >= 1
	})
	if v := metricValue(t, reg, "calyx_gc_released_total", "what", "endpoint"); v != 1 {
		t.Errorf("calyx_gc_released_total{what=endpoint} = %v, want 1", v)
	}
	// And ADD works again.
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(attachment("c-after", "eth0")), nil); err != nil {
		t.Errorf("ADD after the outage: %v", err)
	}
}

// wantTryAgain checks that err is a 503 with CNI code 11 whose message
// says one of states.
func wantTryAgain(t *testing.T, what string, err error, states ...string) {
	t.Helper()
	b := apiErrorBody(err)
	if apiStatus(err) != http.StatusServiceUnavailable || b.Code != cniTryAgainLater {
		t.Errorf("%s: %v (status %d, code %d), want 503 with code 11", what, err, apiStatus(err), b.Code)
		return
	}
	for _, s := range states {
		if strings.Contains(b.Message, s) {
			return
		}
	}
	t.Errorf("%s: %q says none of %q", what, b.Message, states)
}

// With a real 3-member etcd: a killed leader costs at most some ADDs that
// fail with code 11 (never another code, never a hang); a lost quorum
// makes ADDs fail with code 11 saying etcd has no leader, concurrent ADDs
// do not queue behind each other, DEL still succeeds, and /readyz says so.
func TestEtcdClusterLeaderAndQuorumLoss(t *testing.T) {
	cl := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{})
	setup, err := datastore.New(t.Context(), cl.ClientConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	createPool(t, setup)
	fake := route.NewFake()
	n := startNode(t, nil, hooks{kernel: fake, policy: fakeNftables()}, func(c *Config) {
		c.Etcd = cl.ClientConfig()
		c.DatastoreTimeout = 2 * time.Second
	})
	ctx := t.Context()
	att := attachment("c-keep", "eth0")
	var add localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	fake.AddLink(add.HostIfName)

	// The leader dies under an ADD.
	leader, err := cl.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl.Kill(leader)
	if err := timedDo(t, n, localapi.PathCNIAdd, addReq(attachment("c-l0", "eth0"))); err != nil {
		wantTryAgain(t, "ADD as the leader dies", err, "has no leader", "did not answer within", "unreachable", "did not complete the request in time")
	}
	if _, err := cl.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "an ADD to succeed under the new leader", func() bool {
		err := timedDo(t, n, localapi.PathCNIAdd, addReq(attachment("c-l1", "eth0")))
		if err != nil {
			wantTryAgain(t, "ADD after a new leader", err, "has no leader", "did not answer within", "unreachable", "did not complete the request in time")
		}
		return err == nil
	})
	cl.Restart(leader)

	// Quorum lost: two of three members stop.
	last := (leader + 1) % 3
	for i := range 3 {
		if i != last {
			cl.Stop(i)
		}
	}
	// Concurrent ADDs all fail with code 11 on their own deadlines rather
	// than one after another.
	const concurrent = 6
	start := time.Now()
	errs := make(chan error, concurrent)
	for i := range concurrent {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, outageBound)
			defer cancel()
			errs <- n.client.Do(cctx, localapi.PathCNIAdd, addReq(attachment("c-q"+string(rune('a'+i)), "eth0")), nil)
		}()
	}
	for range concurrent {
		wantTryAgain(t, "ADD without quorum", <-errs, "has no leader")
	}
	if took := time.Since(start); took >= outageBound {
		t.Errorf("%d concurrent ADDs without quorum took %s: they queued", concurrent, took)
	}
	var readyErr error
	testnet.WaitFor(t, "/readyz to say etcd has no leader", func() bool {
		readyErr = n.client.Do(ctx, localapi.PathReadyz, struct{}{}, nil)
		return readyErr != nil && strings.Contains(apiErrorBody(readyErr).Message, "has no leader")
	})
	// Now known: the ADD fails at once, saying why.
	err = timedDo(t, n, localapi.PathCNIAdd, addReq(attachment("c-q-known", "eth0")))
	wantTryAgain(t, "ADD once the monitor knows", err, "has no leader")
	// DEL removes the host side and succeeds.
	if err := timedDo(t, n, localapi.PathCNIDel, localapi.DelRequest{Attachment: att}); err != nil {
		t.Errorf("DEL without quorum: %v, want success", err)
	}
	if ok, _ := route.New(fake, testnet.Logger(t)).HasLink(ctx, add.HostIfName); ok {
		t.Errorf("the host veth %s survived the DEL", add.HostIfName)
	}

	// Quorum back.
	for i := range 3 {
		if i != last {
			if err := cl.Start(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	testnet.WaitFor(t, "/readyz to be ready again", func() bool {
		return n.client.Do(ctx, localapi.PathReadyz, struct{}{}, nil) == nil
	})
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(attachment("c-back", "eth0")), nil); err != nil {
		t.Errorf("ADD with quorum back: %v", err)
	}
}
