package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeBackend records what the driver asks of calyx-node.
type fakeBackend struct {
	pools    []Pool
	allocs   []AddressRequest
	released []netip.Addr
	created  []Endpoint
	joins    []Join
	left     []string
	deleted  []string
	err      error // returned by every call when set
}

func (f *fakeBackend) Pools(context.Context) ([]Pool, error) { return f.pools, f.err }
func (f *fakeBackend) Allocate(_ context.Context, r AddressRequest) (netip.Addr, error) {
	f.allocs = append(f.allocs, r)
	switch {
	case f.err != nil:
		return netip.Addr{}, f.err
	case r.Addr.IsValid():
		return r.Addr, nil
	case r.V6:
		return netip.MustParseAddr("fd00::7"), nil
	}
	return netip.MustParseAddr("10.65.0.7"), nil
}
func (f *fakeBackend) Release(_ context.Context, a netip.Addr) error {
	f.released = append(f.released, a)
	return f.err
}
func (f *fakeBackend) CreateEndpoint(_ context.Context, ep Endpoint) (string, error) {
	f.created = append(f.created, ep)
	if ep.MAC != "" {
		return ep.MAC, f.err
	}
	return "02:00:00:00:00:07", f.err
}
func (f *fakeBackend) Join(_ context.Context, j Join) (Joined, error) {
	f.joins = append(f.joins, j)
	return Joined{TempIfName: "tmp0123456789", Gateway4: netip.MustParseAddr("169.254.1.1")}, f.err
}
func (f *fakeBackend) Leave(_ context.Context, id string) error {
	f.left = append(f.left, id)
	return f.err
}
func (f *fakeBackend) DeleteEndpoint(_ context.Context, id string) error {
	f.deleted = append(f.deleted, id)
	return f.err
}

// fakeEngine is dockerd's API.
type fakeEngine struct {
	names      map[string]string
	containers map[string]Container // endpoint ID -> container
	lookups    int
}

func (e *fakeEngine) NetworkName(_ context.Context, id string) (string, error) {
	e.lookups++
	if n, ok := e.names[id]; ok {
		return n, nil
	}
	return "", &notFoundError{what: "network " + id}
}

func (e *fakeEngine) EndpointContainer(_ context.Context, _, ep string) (Container, error) {
	if c, ok := e.containers[ep]; ok {
		return c, nil
	}
	return Container{}, errors.New("no such endpoint")
}

func newTestDriver(t *testing.T) (*Driver, *fakeBackend, *fakeEngine) {
	t.Helper()
	b := &fakeBackend{pools: []Pool{{Name: "p4", CIDR: netip.MustParsePrefix("10.65.0.0/16")}, {Name: "p6", CIDR: netip.MustParsePrefix("fd00::/48")}}}
	e := &fakeEngine{names: map[string]string{"net1": "frontend"}, containers: map[string]Container{
		"ep1": {ID: "c1", Name: "web-1", Labels: map[string]string{"calyx.label/role": "web", "calyx.label/": "empty key", "maintainer": "x"}},
	}}
	return NewDriver(b, e, slog.New(slog.DiscardHandler), nil), b, e
}

// call posts body to the handler and decodes the answer.
func call(t *testing.T, h http.Handler, method string, body any) (int, map[string]any) {
	t.Helper()
	var in io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/"+method, in))
	if ct := rec.Header().Get("Content-Type"); ct != pluginContentType {
		t.Errorf("%s: Content-Type %q", method, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: answer %q is not JSON: %v", method, rec.Body.String(), err)
	}
	return rec.Code, out
}

func TestActivateAndCapabilities(t *testing.T) {
	d, _, _ := newTestDriver(t)
	_, out := call(t, d.NetworkHandler(), "Plugin.Activate", nil)
	if d := cmp.Diff(map[string]any{"Implements": []any{"NetworkDriver"}}, out); d != "" {
		t.Errorf("network Activate (-want +got):\n%s", d)
	}
	_, out = call(t, d.IPAMHandler(), "Plugin.Activate", nil)
	if d := cmp.Diff(map[string]any{"Implements": []any{"IpamDriver"}}, out); d != "" {
		t.Errorf("IPAM Activate (-want +got):\n%s", d)
	}
	// Local data scope, global connectivity: no cluster store needed.
	_, out = call(t, d.NetworkHandler(), "NetworkDriver.GetCapabilities", nil)
	if out["Scope"] != "local" || out["ConnectivityScope"] != "global" {
		t.Errorf("capabilities %v", out)
	}
}

func TestRequestPool(t *testing.T) {
	d, _, _ := newTestDriver(t)
	h := d.IPAMHandler()
	for _, tc := range []struct {
		name    string
		req     requestPoolRequest
		want    map[string]any
		wantErr string
	}{
		{name: "no subnet, IPv4", req: requestPoolRequest{AddressSpace: localAddressSpace},
			want: map[string]any{"PoolID": "calyx-ipv4", "Pool": "0.0.0.0/0", "Data": map[string]any{dataGateway: "169.254.1.1/32"}}},
		{name: "no subnet, IPv6", req: requestPoolRequest{AddressSpace: localAddressSpace, V6: true},
			want: map[string]any{"PoolID": "calyx-ipv6", "Pool": "::/0", "Data": map[string]any{dataGateway: "fe80::ecee:eeff:feee:eeee/128"}}},
		{name: "subnet of a pool", req: requestPoolRequest{Pool: "10.65.0.0/16"},
			want: map[string]any{"PoolID": "calyx-pool4:p4", "Pool": "10.65.0.0/16", "Data": map[string]any{dataGateway: "169.254.1.1/32"}}},
		{name: "IPv6 subnet of a pool", req: requestPoolRequest{Pool: "fd00::/48", V6: true},
			want: map[string]any{"PoolID": "calyx-pool6:p6", "Pool": "fd00::/48", "Data": map[string]any{dataGateway: "fe80::ecee:eeff:feee:eeee/128"}}},
		{name: "subnet of no pool", req: requestPoolRequest{Pool: "10.66.0.0/16"},
			wantErr: "--subnet 10.66.0.0/16: no Calyx IP pool has this CIDR (pools: p4 10.65.0.0/16, p6 fd00::/48)"},
		{name: "part of a pool", req: requestPoolRequest{Pool: "10.65.1.0/24"}, wantErr: "no Calyx IP pool has this CIDR"},
		{name: "not a CIDR", req: requestPoolRequest{Pool: "10.65.0.0"}, wantErr: `--subnet "10.65.0.0": expected a CIDR`},
		{name: "ip range", req: requestPoolRequest{Pool: "10.65.0.0/16", SubPool: "10.65.1.0/24"}, wantErr: "--ip-range 10.65.1.0/24"},
		{name: "ipam options", req: requestPoolRequest{Options: map[string]string{"foo": "bar"}}, wantErr: "--ipam-opt foo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, h, "IpamDriver.RequestPool", tc.req)
			if tc.wantErr != "" {
				if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), tc.wantErr) {
					t.Errorf("got %d %v, want 500 with Err containing %q", code, out, tc.wantErr)
				}
				return
			}
			if d := cmp.Diff(tc.want, out); code != http.StatusOK || d != "" {
				t.Errorf("status %d, answer (-want +got):\n%s", code, d)
			}
		})
	}
}

func TestRequestAndReleaseAddress(t *testing.T) {
	d, b, _ := newTestDriver(t)
	h := d.IPAMHandler()
	for _, tc := range []struct {
		req     requestAddressRequest
		want    string
		wantReq AddressRequest
		wantErr string
	}{
		{req: requestAddressRequest{PoolID: "calyx-ipv4"}, want: "10.65.0.7/32", wantReq: AddressRequest{}},
		{req: requestAddressRequest{PoolID: "calyx-ipv6"}, want: "fd00::7/128", wantReq: AddressRequest{V6: true}},
		{req: requestAddressRequest{PoolID: "calyx-pool6:p6"}, want: "fd00::7/128", wantReq: AddressRequest{Pool: "p6", V6: true}},
		{req: requestAddressRequest{PoolID: "calyx-pool4:p4", Address: "10.65.3.3"}, want: "10.65.3.3/32",
			wantReq: AddressRequest{Pool: "p4", Addr: netip.MustParseAddr("10.65.3.3")}},
		{req: requestAddressRequest{PoolID: "calyx-pool4:p4", Address: "fd00::3"}, wantErr: "not an address of the pool's family"},
		{req: requestAddressRequest{PoolID: "calyx-ipv4", Address: "nonsense"}, wantErr: `--ip "nonsense"`},
		{req: requestAddressRequest{PoolID: "LocalDefault/10.0.0.0/8"}, wantErr: "is not one of calyx-ipam's"},
		{req: requestAddressRequest{PoolID: "calyx-ipv4", Options: map[string]string{requestAddrType: dataGateway}}, wantErr: "--gateway"},
	} {
		b.allocs = nil
		code, out := call(t, h, "IpamDriver.RequestAddress", tc.req)
		if tc.wantErr != "" {
			if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), tc.wantErr) {
				t.Errorf("%+v: got %d %v, want an error containing %q", tc.req, code, out, tc.wantErr)
			}
			if len(b.allocs) != 0 {
				t.Errorf("%+v: refused, yet allocated %v", tc.req, b.allocs)
			}
			continue
		}
		if code != http.StatusOK || out["Address"] != tc.want {
			t.Errorf("%+v: got %d %v, want Address %s", tc.req, code, out, tc.want)
		}
		if d := cmp.Diff([]AddressRequest{tc.wantReq}, b.allocs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("%+v: backend requests (-want +got):\n%s", tc.req, d)
		}
	}
	// The gateway RequestPool named is never released to the backend.
	for _, a := range []string{"169.254.1.1", "fe80::ecee:eeff:feee:eeee", "10.65.0.7/32", "0.0.0.0"} {
		if code, out := call(t, h, "IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: "calyx-ipv4", Address: a}); code != http.StatusOK {
			t.Errorf("ReleaseAddress %s: %d %v", a, code, out)
		}
	}
	if d := cmp.Diff([]netip.Addr{netip.MustParseAddr("10.65.0.7")}, b.released, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("released (-want +got):\n%s", d)
	}
}

func TestCreateNetworkChecks(t *testing.T) {
	d, _, _ := newTestDriver(t)
	h := d.NetworkHandler()
	ours := []ipamData{{AddressSpace: localAddressSpace, Pool: "0.0.0.0/0", Gateway: "169.254.1.1/32"}}
	for _, tc := range []struct {
		name    string
		req     createNetworkRequest
		wantErr string
	}{
		{name: "calyx-ipam", req: createNetworkRequest{NetworkID: "n", IPv4Data: ours}},
		{name: "named by option", req: createNetworkRequest{NetworkID: "named", IPv4Data: ours, Options: map[string]any{optionGeneric: map[string]any{OptionNetworkName: "shared"}}}},
		{name: "default IPAM", req: createNetworkRequest{NetworkID: "n", IPv4Data: []ipamData{{AddressSpace: "LocalDefault", Pool: "172.18.0.0/16"}}}, wantErr: "needs the IPAM driver calyx-ipam"},
		{name: "no pool", req: createNetworkRequest{NetworkID: "n"}, wantErr: "has no address pool"},
		{name: "unknown option", req: createNetworkRequest{NetworkID: "n", IPv4Data: ours, Options: map[string]any{optionGeneric: map[string]any{"mtu": "1400"}}}, wantErr: "option -o mtu"},
		{name: "empty name", req: createNetworkRequest{NetworkID: "n", IPv4Data: ours, Options: map[string]any{optionGeneric: map[string]any{OptionNetworkName: ""}}}, wantErr: "expected a network name"},
	} {
		code, out := call(t, h, "NetworkDriver.CreateNetwork", tc.req)
		if tc.wantErr == "" {
			if code != http.StatusOK {
				t.Errorf("%s: %d %v", tc.name, code, out)
			}
			continue
		}
		if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), tc.wantErr) {
			t.Errorf("%s: got %d %v, want an error containing %q", tc.name, code, out, tc.wantErr)
		}
	}
	// The option names the Calyx network without asking dockerd.
	if got, err := d.networkName(t.Context(), "named"); err != nil || got != "shared" {
		t.Errorf("the network created with -o calyx.network=shared is named %q (%v)", got, err)
	}
}

// TestEndpointLifecycle drives an endpoint in libnetwork's order and
// checks what reaches the backend and what Docker is told.
func TestEndpointLifecycle(t *testing.T) {
	d, b, e := newTestDriver(t)
	h := d.NetworkHandler()
	code, out := call(t, h, "NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "net1", EndpointID: "ep1",
		Interface: &endpointInterface{Address: "10.65.0.7/32", AddressIPv6: "fd00::7/128"}})
	if code != http.StatusOK {
		t.Fatalf("CreateEndpoint: %d %v", code, out)
	}
	// No MAC was given: the driver names the one the endpoint records,
	// and only that (libnetwork refuses a changed address).
	if d := cmp.Diff(map[string]any{"Interface": map[string]any{"MacAddress": "02:00:00:00:00:07"}}, out); d != "" {
		t.Errorf("CreateEndpoint answer (-want +got):\n%s", d)
	}
	want := Endpoint{ID: "ep1", NetworkID: "net1", Network: "frontend", Addrs: []netip.Addr{netip.MustParseAddr("10.65.0.7"), netip.MustParseAddr("fd00::7")}}
	if d := cmp.Diff([]Endpoint{want}, b.created, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("backend endpoint (-want +got):\n%s", d)
	}
	// A MAC given by docker run --mac-address is kept: the answer is empty.
	_, out = call(t, h, "NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "net1", EndpointID: "ep2",
		Interface: &endpointInterface{Address: "10.65.0.8/32", MacAddress: "02:42:0a:41:00:08"}})
	if out["Interface"] != nil {
		t.Errorf("CreateEndpoint with a MAC answered %v, want no Interface", out)
	}
	if e.lookups != 1 {
		t.Errorf("dockerd was asked for the network's name %d times, want once (then cached)", e.lookups)
	}

	code, out = call(t, h, "NetworkDriver.Join", joinRequest{NetworkID: "net1", EndpointID: "ep1", SandboxKey: "/var/run/docker/netns/abc"})
	if code != http.StatusOK {
		t.Fatalf("Join: %d %v", code, out)
	}
	wantJoin := map[string]any{
		"InterfaceName": map[string]any{"SrcName": "tmp0123456789", "DstPrefix": "eth"},
		"Gateway":       "169.254.1.1",
		"StaticRoutes":  []any{map[string]any{"Destination": "169.254.1.1/32", "RouteType": float64(routeConnected)}},

		"DisableGatewayService": false,
	}
	if d := cmp.Diff(wantJoin, out); d != "" {
		t.Errorf("Join answer (-want +got):\n%s", d)
	}
	// Only calyx.label/ labels, without the prefix; an empty key is dropped.
	wantJ := Join{EndpointID: "ep1", Network: "frontend", SandboxKey: "/var/run/docker/netns/abc",
		Container: Container{ID: "c1", Name: "web-1", Labels: map[string]string{"role": "web"}}}
	if d := cmp.Diff([]Join{wantJ}, b.joins); d != "" {
		t.Errorf("backend join (-want +got):\n%s", d)
	}
	// A container dockerd cannot name fails the Join: no endpoint
	// without its labels.
	code, out = call(t, h, "NetworkDriver.Join", joinRequest{NetworkID: "net1", EndpointID: "ep2"})
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "for its calyx.label/ labels") {
		t.Errorf("Join of an endpoint dockerd does not list: %d %v", code, out)
	}
	if len(b.joins) != 1 {
		t.Errorf("the refused Join reached the backend")
	}
	call(t, h, "NetworkDriver.Leave", endpointRequest{NetworkID: "net1", EndpointID: "ep1"})
	call(t, h, "NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: "net1", EndpointID: "ep1"})
	if d := cmp.Diff([]string{"ep1"}, b.left); d != "" {
		t.Errorf("left (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"ep1"}, b.deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	// A network dockerd does not know cannot take endpoints.
	code, out = call(t, h, "NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "gone", EndpointID: "ep3", Interface: &endpointInterface{Address: "10.65.0.9/32"}})
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "reading the name of network gone") {
		t.Errorf("CreateEndpoint on an unknown network: %d %v", code, out)
	}
	// Nor can an endpoint without an address (not calyx-ipam).
	code, out = call(t, h, "NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: "net1", EndpointID: "ep4", Interface: &endpointInterface{}})
	if code != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "has no address") {
		t.Errorf("CreateEndpoint without an address: %d %v", code, out)
	}
}

func TestBadRequestsAndObserver(t *testing.T) {
	b := &fakeBackend{err: errors.New("etcd is down")}
	var observed []string
	d := NewDriver(b, &fakeEngine{names: map[string]string{"net1": "frontend"}}, slog.New(slog.DiscardHandler), func(m string, _ time.Duration, err error) {
		if err != nil {
			m += " error"
		}
		observed = append(observed, m)
	})
	rec := httptest.NewRecorder()
	d.NetworkHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/NetworkDriver.CreateEndpoint", strings.NewReader("{nope")))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "decoding the NetworkDriver.CreateEndpoint request") {
		t.Errorf("a malformed body: %d %s", rec.Code, rec.Body)
	}
	code, out := call(t, d.IPAMHandler(), "IpamDriver.RequestAddress", requestAddressRequest{PoolID: "calyx-ipv4"})
	if code != http.StatusInternalServerError || out["Err"] != "etcd is down" {
		t.Errorf("a backend failure: %d %v", code, out)
	}
	// A method the plugin does not serve answers 404, which dockerd
	// takes as an optional call the plugin leaves out.
	rec = httptest.NewRecorder()
	d.NetworkHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/NetworkDriver.Frobnicate", http.NoBody))
	if rec.Code != http.StatusNotFound {
		t.Errorf("an unknown method: %d", rec.Code)
	}
	if d := cmp.Diff([]string{"NetworkDriver.CreateEndpoint error", "IpamDriver.RequestAddress error"}, observed); d != "" {
		t.Errorf("observed (-want +got):\n%s", d)
	}
}
