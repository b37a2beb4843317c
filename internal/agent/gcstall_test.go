package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
)

// stalledStore is a datastore that stopped answering, as etcd does for a
// client whose connection is gone: every call waits for its context to
// end. It serves as the endpoint store, the allocator and the node claim.
type stalledStore struct {
	calls chan string // receives the name of each call as it starts
}

var (
	_ resourceStore = (*stalledStore)(nil)
	_ allocator     = (*stalledStore)(nil)
	_ nodeClaim     = (*stalledStore)(nil)
)

func newStalledStore() *stalledStore { return &stalledStore{calls: make(chan string, 100)} }

func (s *stalledStore) wait(ctx context.Context, what string) error {
	select {
	case s.calls <- what:
	default:
	}
	<-ctx.Done()
	return fmt.Errorf("%s: %w", what, ctx.Err())
}

// started waits (boundedly) for a call named what to start.
func (s *stalledStore) started(t *testing.T, what string) {
	t.Helper()
	timeout := time.After(outageBound)
	for {
		select {
		case c := <-s.calls:
			if c == what {
				return
			}
		case <-timeout:
			t.Fatalf("no %s call within %s", what, outageBound)
		}
	}
}

func (s *stalledStore) Get(ctx context.Context, _ api.KindInfo, _ string) (api.Resource, error) {
	return nil, s.wait(ctx, "Get")
}

func (s *stalledStore) Create(ctx context.Context, _ api.Resource) (api.Resource, error) {
	return nil, s.wait(ctx, "Create")
}

func (s *stalledStore) Update(ctx context.Context, _ api.Resource) (api.Resource, error) {
	return nil, s.wait(ctx, "Update")
}

func (s *stalledStore) PrepareCreate(api.Resource) (datastore.PreparedCreate, error) {
	return datastore.PreparedCreate{}, errors.New("stalledStore: no PrepareCreate")
}

func (s *stalledStore) Delete(ctx context.Context, _ api.KindInfo, _, _ string) (api.Resource, error) {
	return nil, s.wait(ctx, "Delete")
}

func (s *stalledStore) AutoAssign(ctx context.Context, _ ipam.AutoAssignArgs) (ipam.AssignResult, error) {
	return ipam.AssignResult{}, s.wait(ctx, "AutoAssign")
}

func (s *stalledStore) AssignIP(ctx context.Context, _ ipam.AssignIPArgs) error {
	return s.wait(ctx, "AssignIP")
}

func (s *stalledStore) ReleaseByHandle(ctx context.Context, _ string) error {
	return s.wait(ctx, "ReleaseByHandle")
}

func (s *stalledStore) IPsByHandle(ctx context.Context, _ string) ([]netip.Addr, error) {
	return nil, s.wait(ctx, "IPsByHandle")
}

func (s *stalledStore) GetAssignment(ctx context.Context, _ netip.Addr) (ipam.Assignment, error) {
	return ipam.Assignment{}, s.wait(ctx, "GetAssignment")
}

func (s *stalledStore) NodeAllocations(ctx context.Context, _ string, _ bool) ([]ipam.Allocation, error) {
	return nil, s.wait(ctx, "NodeAllocations")
}

func (s *stalledStore) Check(ctx context.Context) error { return s.wait(ctx, "Check") }

// stalledService is a service whose datastore stopped answering: store,
// allocator and claim are st, and ds is a client of etcd (stop it to make
// the health check fail) whose health monitor has not noticed anything.
// It has the endpoint of attachment att, whose veth is in the kernel fake.
func stalledService(t *testing.T, st *stalledStore, ds *datastore.Client, att localapi.Attachment) (*service, *route.Fake) {
	t.Helper()
	log := testnet.Logger(t)
	handle := att.Handle()
	v := newView("node-a", time.Now)
	v.wroteEndpoint(&api.WorkloadEndpoint{
		Metadata: api.ObjectMeta{
			Name:        endpointName("node-a", api.OrchestratorCNI, att.ContainerID, att.IfName),
			Annotations: map[string]string{AnnotationHandle: handle},
			Labels:      map[string]string{LabelNetwork: networkLabelValue(att.Network)},
		},
		Spec: api.WorkloadEndpointSpec{
			Node: "node-a", ContainerID: att.ContainerID, Endpoint: att.IfName,
			InterfaceName: vethName(handle), IPNetworks: []string{"10.65.0.5/32"},
		},
	})
	m, err := newMetrics(nil, v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	fake := route.NewFake()
	fake.AddLink(vethName(handle))
	rr := route.New(fake, log)
	return &service{
		node: "node-a", log: log, store: st, alloc: st, host: rr, dp: startLoop(t, rr, v, m),
		view: v, locks: newHandleLocks(), adds: newPendingAdds(processAlive), m: m, now: time.Now,
		ds: ds, dsTimeout: 200 * time.Millisecond, claim: st,
	}, fake
}

// hasLink reports whether the kernel fake has the link.
func hasLink(t *testing.T, fake *route.Fake, name string) bool {
	t.Helper()
	ok, err := route.New(fake, slog.New(slog.DiscardHandler)).HasLink(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// within runs f and fails the test when it does not return within
// outageBound.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(outageBound):
		t.Fatalf("%s did not return within %s", what, outageBound)
		return nil
	}
}

// The collector, collecting an endpoint whose veth vanished or a leaked
// handle at the moment etcd stops answering, holds no handle lock while it
// waits on etcd and gives up within the datastore timeout; a DEL of the
// attachment meanwhile removes the host side and succeeds.
func TestCollectorStuckOnEtcdDoesNotHoldUpDel(t *testing.T) {
	etcd := testnet.StartEtcd(t)
	ds := testnet.NewClient(t, etcd)
	if err := etcd.Close(); err != nil {
		t.Fatal(err)
	}
	st := newStalledStore()
	att := attachment("c-stuck", "eth0")
	handle := att.Handle()
	s, fake := stalledService(t, st, ds, att)
	fake.RemoveLink(vethName(handle)) // vanished: a candidate
	col := newCollector(s, s.log, time.Minute, time.Second)

	// The collector's own context never ends: only the datastore timeout
	// may end its wait.
	gcCtx, cancelGC := context.WithCancel(context.Background())
	defer cancelGC()
	name := endpointName("node-a", api.OrchestratorCNI, att.ContainerID, att.IfName)
	collected := make(chan error, 1)
	go func() { collected <- col.collectEndpoint(gcCtx, name, nil) }()
	st.started(t, "Check")
	if s.locks.busy(handle) {
		t.Error("the collector holds the handle's lock while it checks the node claim")
	}
	fake.AddLink(vethName(handle)) // say, a retried ADD's
	if err := within(t, "DEL", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), outageBound)
		defer cancel()
		return s.del(ctx, localapi.DelRequest{Attachment: att})
	}); err != nil {
		t.Errorf("DEL while the collector is stuck on etcd: %v, want success", err)
	}
	if hasLink(t, fake, vethName(handle)) {
		t.Error("the host veth survived the DEL")
	}
	select {
	case err := <-collected:
		if err == nil || !isOutage(err) {
			t.Errorf("collectEndpoint with etcd stalled: %v, want an outage error", err)
		}
	case <-time.After(outageBound):
		t.Fatalf("collectEndpoint did not give up within %s", outageBound)
	}

	leaked := make(chan error, 1)
	go func() {
		_, err := s.releaseLeaked(gcCtx, "net1.c-leaked.eth0")
		leaked <- err
	}()
	st.started(t, "Check")
	if s.locks.busy("net1.c-leaked.eth0") {
		t.Error("the collector holds the leaked handle's lock while it checks the node claim")
	}
	if err := within(t, "releaseLeaked", func() error { return <-leaked }); err == nil || !isOutage(err) {
		t.Errorf("releaseLeaked with etcd stalled: %v, want an outage error", err)
	}
}

// A DEL whose handle's lock stays held (by an operation stuck on etcd)
// waits for it no longer than the datastore timeout: while etcd answers,
// it fails with code 11 and touches nothing; while etcd is down, it
// removes the host side and succeeds.
func TestDelLockWaitIsBounded(t *testing.T) {
	etcd := testnet.StartEtcd(t)
	ds := testnet.NewClient(t, etcd)
	st := newStalledStore()
	att := attachment("c-locked", "eth0")
	handle := att.Handle()
	s, fake := stalledService(t, st, ds, att)
	unlock, err := s.locks.lock(t.Context(), handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	del := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), outageBound)
		defer cancel()
		return s.del(ctx, localapi.DelRequest{Attachment: att})
	}

	err = within(t, "DEL with etcd up", del)
	if status, code := classify(err); !errors.Is(err, errAttachmentBusy) || status != http.StatusServiceUnavailable || code != cniTryAgainLater {
		t.Errorf("DEL of a locked attachment with etcd up: %v (status %d, code %d), want busy, 503, code 11", err, status, code)
	}
	if !hasLink(t, fake, vethName(handle)) {
		t.Error("a DEL that failed removed the host veth")
	}

	if err := etcd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, "DEL with etcd down", del); err != nil {
		t.Errorf("DEL of a locked attachment with etcd down: %v, want success", err)
	}
	if hasLink(t, fake, vethName(handle)) {
		t.Error("the host veth survived the DEL")
	}
}

// A CNI GC bounds its work on each attachment by the datastore timeout:
// with etcd no longer answering, it returns (with an outage error) rather
// than wait on etcd under the attachment's lock for as long as its own
// context lasts.
func TestCNIGCStuckOnEtcdGivesUp(t *testing.T) {
	etcd := testnet.StartEtcd(t)
	ds := testnet.NewClient(t, etcd)
	if err := etcd.Close(); err != nil {
		t.Fatal(err)
	}
	st := newStalledStore()
	att := attachment("c-gc", "eth0")
	s, fake := stalledService(t, st, ds, att)
	s.claim = heldClaim{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := within(t, "CNI GC", func() error {
		_, err := s.gc(ctx, localapi.GCRequest{Network: att.Network})
		return err
	})
	if err == nil || !isOutage(err) {
		t.Errorf("CNI GC with etcd stalled: %v, want an outage error", err)
	}
	if hasLink(t, fake, vethName(att.Handle())) {
		t.Error("the CNI GC left the host veth of an attachment it was told to release")
	}
	if s.locks.busy(att.Handle()) {
		t.Error("the attachment's lock is still held after the CNI GC returned")
	}
}
