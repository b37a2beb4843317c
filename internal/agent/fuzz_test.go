package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// errNoBackend is what every side effect of the fuzzed service returns:
// the fuzz target exercises decoding, validation and error reporting, not
// the datastore or the kernel.
var errNoBackend = errors.New("fuzz: no backend")

// failing implements every side-effect interface of the service by failing.
type failing struct{}

func (failing) Get(context.Context, api.KindInfo, string) (api.Resource, error) {
	return nil, errNoBackend
}
func (failing) Create(context.Context, api.Resource) (api.Resource, error) { return nil, errNoBackend }
func (failing) Update(context.Context, api.Resource) (api.Resource, error) { return nil, errNoBackend }
func (failing) PrepareCreate(api.Resource) (datastore.PreparedCreate, error) {
	return datastore.PreparedCreate{}, errNoBackend
}
func (failing) Delete(context.Context, api.KindInfo, string, string) (api.Resource, error) {
	return nil, errNoBackend
}

func (failing) AutoAssign(context.Context, ipam.AutoAssignArgs) (ipam.AssignResult, error) {
	return ipam.AssignResult{}, errNoBackend
}
func (failing) AssignIP(context.Context, ipam.AssignIPArgs) error         { return errNoBackend }
func (failing) ReleaseByHandle(context.Context, string) error             { return errNoBackend }
func (failing) IPsByHandle(context.Context, string) ([]netip.Addr, error) { return nil, errNoBackend }
func (failing) GetAssignment(context.Context, netip.Addr) (ipam.Assignment, error) {
	return ipam.Assignment{}, errNoBackend
}
func (failing) NodeAllocations(context.Context, string, bool) ([]ipam.Allocation, error) {
	return nil, errNoBackend
}

func (failing) Check(context.Context, route.Endpoint) ([]string, error) { return nil, errNoBackend }
func (failing) HasLink(context.Context, string) (bool, error)           { return false, errNoBackend }
func (failing) LinkNames(context.Context) (map[string]bool, error)      { return nil, errNoBackend }
func (failing) waitProgrammed(context.Context, string, uint64) error    { return errNoBackend }
func (failing) programmedSince(context.Context, string, uint64) bool    { return false }
func (failing) removeEndpoint(context.Context, route.Endpoint) error    { return errNoBackend }
func (failing) unrouteEndpoint(context.Context, route.Endpoint) error   { return errNoBackend }

var (
	_ resourceStore   = failing{}
	_ allocator       = failing{}
	_ hostInspector   = failing{}
	_ dataplaneWriter = failing{}
)

// FuzzLocalAPI posts arbitrary bodies to every local API operation of a
// ready calyx-node whose datastore and kernel always fail, and checks that
// each is answered (never a panic) with a known status and, for an error,
// a localapi.Error with a message; a body that does not start with a JSON
// value is a 400.
func FuzzLocalAPI(f *testing.F) {
	paths := []string{
		localapi.PathCNIAdd, localapi.PathCNIReady, localapi.PathCNIDel, localapi.PathCNICheck,
		localapi.PathCNIGC, localapi.PathIPAMAdd, localapi.PathIPAMDel, localapi.PathStatus,
	}
	a := localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}
	for _, req := range []any{
		localapi.AddRequest{Attachment: a, Orchestrator: "mesos", Labels: map[string]string{"app": "web"}},
		localapi.AddRequest{Attachment: a, Orchestrator: "k8s"},
		localapi.ReadyRequest{Attachment: a, ContainerMAC: "02:00:00:00:00:01"},
		localapi.ReadyRequest{Attachment: a, ContainerMAC: "nope"},
		localapi.DelRequest{Attachment: a},
		localapi.CheckRequest{Attachment: a},
		localapi.GCRequest{},
		localapi.IPAMAddRequest{Attachment: a},
		localapi.IPAMDelRequest{Attachment: a},
	} {
		b, err := json.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		for i := range paths {
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(0), []byte("{"))
	f.Add(uint8(1), []byte(`{"network": 1}`))
	f.Add(uint8(2), []byte(`[]`))

	v := newView("node-a", time.Now)
	v.OnSnapshot(datastore.Snapshot{Revision: 1})
	m, err := newMetrics(prometheus.NewRegistry(), v, func() datastore.Status { return datastore.Status{} }, func() datastore.Health { return datastore.Health{} }, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	s := &service{
		node: "node-a", log: slog.New(slog.DiscardHandler), store: failing{}, alloc: failing{}, host: failing{},
		dp: failing{}, view: v, locks: newHandleLocks(), adds: newPendingAdds(func(int) bool { return false }), m: m, mtu: 1450, now: time.Now,
	}
	h := apiHandler(s, health{node: "node-a", ready: func() (bool, string) { return true, "" }}, nil)
	known := map[int]bool{
		http.StatusOK: true, http.StatusBadRequest: true, http.StatusNotFound: true, http.StatusConflict: true,
		http.StatusInternalServerError: true, http.StatusServiceUnavailable: true,
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(body))
		h.ServeHTTP(rec, req)
		if !known[rec.Code] {
			t.Fatalf("POST %s %q: status %d", path, body, rec.Code)
		}
		if rec.Code == http.StatusOK {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("POST %s %q: 200 with a body that is not JSON: %q", path, body, rec.Body)
			}
			return
		}
		var e localapi.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
			t.Fatalf("POST %s %q: status %d with body %q, want a localapi.Error with a message", path, body, rec.Code, rec.Body)
		}
		// The handlers read the first JSON value of the body (and ignore
		// what follows it); a body without one must be a 400.
		var first any
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&first); err != nil && path != localapi.PathStatus && rec.Code != http.StatusBadRequest {
			t.Fatalf("POST %s %q (not JSON): status %d, want 400", path, body, rec.Code)
		}
	})
}
