package agent

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/localapi"
)

// slowDeleter is a fake kernel whose deletions wait for release.
type slowDeleter struct {
	*route.Fake
	release chan struct{}
}

func (s slowDeleter) DeleteLink(l route.Link) error {
	<-s.release
	return s.Fake.DeleteLink(l)
}

func TestReaper(t *testing.T) {
	fake := route.NewFake()
	fake.AddLink("calyxa")
	k := slowDeleter{Fake: fake, release: make(chan struct{})}
	r := newReaper(k, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()

	if err := r.wait(t.Context(), "calyxa"); err != nil {
		t.Fatalf("wait with nothing queued: %v", err)
	}
	r.reap("calyxa")
	r.reap("calyx-gone") // already gone: not an error
	short, cancelShort := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancelShort()
	if err := r.wait(short, "calyxa"); err == nil || !strings.Contains(err.Error(), "old veth calyxa") {
		t.Fatalf("wait while the deletion is held: %v, want it to time out", err)
	}
	// A wait moves its veth to the front of the queue.
	r.reap("calyx-b")
	r.reap("calyx-c")
	waited := make(chan error, 1)
	go func() { waited <- r.wait(t.Context(), "calyx-c") }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		front := len(r.queue) > 0 && r.queue[0] == "calyx-c"
		r.mu.Unlock()
		if front {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("calyx-c was not moved to the front of the queue")
		}
		time.Sleep(time.Millisecond)
	}
	close(k.release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t.Context(), "calyxa"); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.LinkByName("calyxa"); !route.IsLinkNotFound(err) {
		t.Errorf("calyxa after its deletion: %v", err)
	}
	cancel()
	<-done
}

// TestDelDefersVeth: DEL answers before the veth is deleted, which
// follows; an ADD of the same attachment waits for it.
func TestDelDefersVeth(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	ctx := t.Context()
	att := attachment("ctr", "eth0")
	for round := range 2 {
		req := addReq(att)
		req.PluginCreatesVeth = true
		var add localapi.AddResponse
		if err := n.client.Do(ctx, localapi.PathCNIAdd, req, &add); err != nil {
			t.Fatalf("round %d: ADD: %v", round, err)
		}
		fake.AddLink(add.HostIfName)
		if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: add.ContainerMAC}, nil); err != nil {
			t.Fatalf("round %d: READY: %v", round, err)
		}
		if err := n.client.Do(ctx, localapi.PathCNIDel, localapi.DelRequest{Attachment: att, DeferVethDelete: true}, nil); err != nil {
			t.Fatalf("round %d: DEL: %v", round, err)
		}
		if getEndpoint(t, store, add.Endpoint) != nil {
			t.Errorf("round %d: endpoint left after DEL", round)
		}
		if slices.ContainsFunc(fake.Render(), func(l string) bool { return strings.HasPrefix(l, "route "+add.IPs[0]) }) {
			t.Errorf("round %d: route to %s left after DEL", round, add.IPs[0])
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := fake.LinkByName(vethName(att.Handle())); route.IsLinkNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the veth was never deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
