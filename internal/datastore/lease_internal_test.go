package datastore

import (
	"context"
	"sync"
	"testing"
	"time"

	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// flakyEtcd is just enough of etcd for a claim: its reads fail with the
// queued errors first, its leases lapse as told, and every write succeeds.
type flakyEtcd struct {
	clientv3.KV
	clientv3.Lease
	clientv3.Watcher

	mu      sync.Mutex // guards following fields
	rev     int64
	getErrs []error // returned by the next reads, in order
	lapse   bool    // the next keepalive ends at once, as when etcd went silent for a TTL
}

func (f *flakyEtcd) Get(context.Context, string, ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.getErrs) > 0 {
		err := f.getErrs[0]
		f.getErrs = f.getErrs[1:]
		return nil, err
	}
	resp := &clientv3.GetResponse{}
	resp.Header = &etcdserverpb.ResponseHeader{Revision: f.rev}
	return resp, nil
}

func (f *flakyEtcd) Txn(context.Context) clientv3.Txn { return &flakyTxn{f: f} }

func (f *flakyEtcd) Grant(_ context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	return &clientv3.LeaseGrantResponse{ID: clientv3.LeaseID(f.rev), TTL: ttl}, nil
}

func (f *flakyEtcd) Revoke(context.Context, clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	return &clientv3.LeaseRevokeResponse{}, nil
}

func (f *flakyEtcd) KeepAlive(_ context.Context, _ clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan *clientv3.LeaseKeepAliveResponse)
	if f.lapse {
		f.lapse = false
		close(ch)
	}
	return ch, nil
}

func (f *flakyEtcd) Close() error { return nil }

func (f *flakyEtcd) Watch(context.Context, string, ...clientv3.OpOption) clientv3.WatchChan {
	return make(chan clientv3.WatchResponse)
}

type flakyTxn struct{ f *flakyEtcd }

func (t *flakyTxn) If(...clientv3.Cmp) clientv3.Txn  { return t }
func (t *flakyTxn) Then(...clientv3.Op) clientv3.Txn { return t }
func (t *flakyTxn) Else(...clientv3.Op) clientv3.Txn { return t }
func (t *flakyTxn) Commit() (*clientv3.TxnResponse, error) {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.f.rev++
	return &clientv3.TxnResponse{Header: &etcdserverpb.ResponseHeader{Revision: t.f.rev}, Succeeded: true}, nil
}

// A claim whose lease lapsed while etcd had no quorum keeps being taken
// again while the reads fail the way a member without a leader fails them
// ("request timed out", "no leader"), instead of ending Run.
func TestClaimRunRetriesWithoutQuorum(t *testing.T) {
	fake := &flakyEtcd{}
	cli := clientv3.NewCtxClient(t.Context())
	defer cli.Close()
	cli.KV, cli.Lease, cli.Watcher = fake, fake, fake
	c := &Client{cli: cli, endpoints: []string{"https://etcd.test:2379"}, now: time.Now}
	cl, err := c.Claim(t.Context(), ClaimSpec{Key: ClaimPrefix + "nodes/n1", Value: []byte("host-a"), TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	fake.lapse = true
	fake.getErrs = []error{rpctypes.ErrTimeout, rpctypes.ErrNoLeader, rpctypes.ErrTimeoutDueToLeaderFail}
	fake.mu.Unlock()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var failures []error
	retaken := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- cl.Run(ctx, ClaimEvents{
			Retaken: func() { retaken <- struct{}{} },
			Retrying: func(err error) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, err)
			},
		})
	}()
	select {
	case <-retaken:
	case err := <-done:
		t.Fatalf("Run returned %v while etcd had no quorum, want it to take the claim again", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the claim was not taken again")
	}
	mu.Lock()
	for _, err := range failures {
		if !IsUnavailable(err) {
			t.Errorf("re-take failure %v: want it classified as unavailable", err)
		}
	}
	if len(failures) != 3 {
		t.Errorf("%d failed re-takes reported (%v), want 3", len(failures), failures)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}
