package agent

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// Concurrent ADDs of one attachment through the local API: one succeeds,
// every other is told, with CNI code 11, that another ADD is in progress,
// and nothing of the winner's is undone. After the winner's READY, a
// further ADD is the ordinary "already exists"; after a DEL, a new ADD
// succeeds.
func TestConcurrentAddsOfOneAttachment(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	att := attachment("ctr-race", "eth0")
	const racers = 4
	var wg sync.WaitGroup
	resps := make([]localapi.AddResponse, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() { errs[i] = n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(att), &resps[i]) })
	}
	wg.Wait()
	var won []localapi.AddResponse
	for i, err := range errs {
		if err == nil {
			won = append(won, resps[i])
			continue
		}
		var e *localapi.APIError
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.Body.Code != cniTryAgainLater ||
			!strings.Contains(e.Body.Message, "another ADD for container ctr-race ifname eth0 is in progress") {
			t.Errorf("losing ADD %d: %v (%+v), want 503, code 11, another ADD in progress", i, err, e)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent ADDs succeeded, want 1: %v", len(won), racers, errs)
	}
	add := won[0]
	ips, err := ipam.New(store).IPsByHandle(t.Context(), att.Handle())
	if err != nil || len(ips) != 1 || ips[0].String()+"/32" != add.IPs[0] {
		t.Fatalf("addresses after the race: %v, %v; want the winner's %v", ips, err, add.IPs)
	}
	if getEndpoint(t, store, add.Endpoint) == nil {
		t.Fatal("the winner's endpoint is gone")
	}

	fake.AddLink(add.HostIfName)
	if err := n.client.Do(t.Context(), localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: add.ContainerMAC}, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(att), nil); apiStatus(err) != http.StatusConflict {
		t.Errorf("ADD after READY: %v, want 409", err)
	}
	if err := n.client.Do(t.Context(), localapi.PathCNIDel, localapi.DelRequest{Attachment: att}, nil); err != nil {
		t.Fatal(err)
	}

	// An ADD answered without READY, then DEL (the plugin's undo): the
	// next ADD is not held up.
	other := attachment("ctr-undone", "eth0")
	for range 2 {
		if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(other), nil); err != nil {
			t.Fatal(err)
		}
		if err := n.client.Do(t.Context(), localapi.PathCNIDel, localapi.DelRequest{Attachment: other}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A pending ADD no longer holds up its attachment once its plugin process
// is gone or it is older than pendingAddMaxAge.
func TestPendingAdds(t *testing.T) {
	alive := map[int]bool{10: true}
	p := newPendingAdds(func(pid int) bool { return alive[pid] })
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p.added("h1", 10, t0, 0)
	p.added("h2", 0, t0, 0)
	for _, tc := range []struct {
		name   string
		handle string
		at     time.Time
		dead   bool
		want   bool
	}{
		{"live plugin", "h1", t0.Add(time.Second), false, true},
		{"unknown pid, young", "h2", t0.Add(time.Second), false, true},
		{"unknown pid, too old", "h2", t0.Add(pendingAddMaxAge), false, false},
		{"plugin died", "h1", t0.Add(2 * time.Second), true, false},
		{"none", "h3", t0, false, false},
	} {
		if tc.dead {
			delete(alive, 10)
		}
		if got := p.busy(tc.handle, tc.at); got != tc.want {
			t.Errorf("%s: busy %v, want %v", tc.name, got, tc.want)
		}
	}
	if n := len(p.m); n != 0 {
		t.Errorf("%d pending ADDs left after they expired", n)
	}
}
