package agent

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/localapi"
)

func TestCheckPortMappings(t *testing.T) {
	for _, tc := range []struct {
		name string
		pms  []localapi.PortMapping
		msg  string // "" = accepted
	}{
		{name: "none"},
		{name: "good", pms: []localapi.PortMapping{
			{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 31001, ContainerPort: 80, Protocol: "UDP"},
			{HostPort: 31002, ContainerPort: 80, Protocol: "sctp"},
			{HostPort: 65535, ContainerPort: 1},
		}},
		{name: "host port zero", pms: []localapi.PortMapping{{ContainerPort: 80, Protocol: "tcp"}},
			msg: "portMappings[0].hostPort: expected a port number 1-65535, got 0"},
		{name: "container port zero", pms: []localapi.PortMapping{{HostPort: 31001, ContainerPort: 80}, {HostPort: 31002, Protocol: "tcp"}},
			msg: "portMappings[1].containerPort: expected a port number 1-65535, got 0"},
		{name: "protocol unknown", pms: []localapi.PortMapping{{HostPort: 31001, ContainerPort: 80, Protocol: "icmp"}},
			msg: `portMappings[0].protocol: expected "tcp", "udp" or "sctp", got "icmp"`},
		{name: "host port twice", pms: []localapi.PortMapping{{HostPort: 31001, ContainerPort: 80}, {HostPort: 31001, ContainerPort: 81, Protocol: "TCP"}},
			msg: "portMappings[1].hostPort: host port 31001/tcp is already mapped by portMappings[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPortMappings(tc.pms)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) || httpStatus(err) != http.StatusBadRequest {
				t.Fatalf("error %v (status %d), want 400 containing %q", err, httpStatus(err), tc.msg)
			}
		})
	}
}

// httpStatus is the status the local API answers err with.
func httpStatus(err error) int {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e.status
	}
	return 0
}

func TestBuildEndpointPortMappings(t *testing.T) {
	req := localapi.AddRequest{
		Attachment: attachment("c1", "eth0"), Orchestrator: api.OrchestratorMesos,
		PortMappings: []localapi.PortMapping{
			{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 31001, ContainerPort: 53, Protocol: "udp"},
			{HostPort: 31002, ContainerPort: 8080},
			{HostPort: 31003, ContainerPort: 9000, Protocol: "sctp"},
		},
	}
	w := buildEndpoint("node-a", cniEndpoint("node-a", req, api.OrchestratorMesos, []netip.Addr{netip.MustParseAddr("10.65.0.7")}))
	want := []api.EndpointPort{
		{Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: 80, HostPort: 31001},
		{Protocol: api.Protocol{Name: api.ProtocolUDP}, Port: 53, HostPort: 31001},
		{Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: 8080, HostPort: 31002},
		{Protocol: api.Protocol{Name: api.ProtocolSCTP}, Port: 9000, HostPort: 31003},
	}
	if d := cmp.Diff(want, w.Spec.Ports); d != "" {
		t.Errorf("spec.ports (-want +got):\n%s", d)
	}
	if err := w.Validate(); err != nil {
		t.Errorf("the endpoint does not validate: %v", err)
	}
	req.PortMappings = nil
	if w := buildEndpoint("node-a", cniEndpoint("node-a", req, api.OrchestratorMesos, []netip.Addr{netip.MustParseAddr("10.65.0.7")})); w.Spec.Ports != nil {
		t.Errorf("spec.ports without mappings: %v", w.Spec.Ports)
	}
}

func TestHostPortConflict(t *testing.T) {
	ep := func(name, node string, ports ...api.EndpointPort) *api.WorkloadEndpoint {
		w := wepKind().New().(*api.WorkloadEndpoint)
		w.Metadata.Name = name
		w.Spec.Node, w.Spec.ContainerID, w.Spec.Ports = node, "cid-"+name, ports
		return w
	}
	tcp := func(host, port uint16) api.EndpointPort {
		return api.EndpointPort{Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: port, HostPort: host}
	}
	udp := func(host, port uint16) api.EndpointPort {
		return api.EndpointPort{Protocol: api.Protocol{Name: api.ProtocolUDP}, Port: port, HostPort: host}
	}
	named := api.EndpointPort{Name: "http", Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: 31005}
	eps := []*api.WorkloadEndpoint{
		ep("a", "node-a", tcp(31001, 80)),
		ep("b", "node-b", tcp(31002, 80)),
		ep("c", "node-a", named),
		ep("self", "node-a", tcp(31003, 80)),
	}
	for _, tc := range []struct {
		name  string
		ports []api.EndpointPort
		msg   string
	}{
		{name: "no mappings"},
		{name: "free port", ports: []api.EndpointPort{tcp(31004, 80)}},
		{name: "same port, other protocol", ports: []api.EndpointPort{udp(31001, 53)}},
		{name: "mapped on another node", ports: []api.EndpointPort{tcp(31002, 80)}},
		{name: "another endpoint's named port is no mapping", ports: []api.EndpointPort{tcp(31005, 80)}},
		{name: "a named port in the request is no mapping", ports: []api.EndpointPort{{Name: "web", Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: 80}}},
		{name: "own endpoint", ports: []api.EndpointPort{tcp(31003, 80)}},
		{name: "taken", ports: []api.EndpointPort{tcp(31004, 80), tcp(31001, 8080)},
			msg: "host port 31001/TCP is already mapped on node node-a by endpoint a (container cid-a)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := hostPortConflict("node-a", "self", tc.ports, eps)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) || httpStatus(err) != http.StatusBadRequest {
				t.Fatalf("error %v (status %d), want 400 containing %q", err, httpStatus(err), tc.msg)
			}
		})
	}
}

func TestHostPortLockKeys(t *testing.T) {
	ports := mappingPorts([]localapi.PortMapping{
		{HostPort: 31002, ContainerPort: 80, Protocol: "udp"},
		{HostPort: 31001, ContainerPort: 80},
		{HostPort: 31002, ContainerPort: 80, Protocol: "UDP"},
	})
	want := []string{"host port 31001/TCP", "host port 31002/UDP"}
	if d := cmp.Diff(want, hostPortLockKeys(ports)); d != "" {
		t.Errorf("lock keys (-want +got):\n%s", d)
	}
}

// TestAddHostPortTaken runs ADDs through calyx-node: an endpoint records
// its port mappings, and a second ADD for a host port and protocol that
// another endpoint on the node maps is refused with 400, including when
// the two ADDs race.
func TestAddHostPortTaken(t *testing.T) {
	etcd, store := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	ctx := t.Context()
	withPorts := func(cid string, pms ...localapi.PortMapping) localapi.AddRequest {
		r := addReq(attachment(cid, "eth0"))
		r.PortMappings = pms
		return r
	}

	var first localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, withPorts("c1", localapi.PortMapping{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"}), &first); err != nil {
		t.Fatal(err)
	}
	w := getEndpoint(t, store, first.Endpoint)
	if w == nil {
		t.Fatal("no endpoint stored")
	}
	if d := cmp.Diff([]api.EndpointPort{{Protocol: api.Protocol{Name: api.ProtocolTCP}, Port: 80, HostPort: 31001}}, w.Spec.Ports); d != "" {
		t.Errorf("stored spec.ports (-want +got):\n%s", d)
	}

	err := n.client.Do(ctx, localapi.PathCNIAdd, withPorts("c2",
		localapi.PortMapping{HostPort: 31002, ContainerPort: 80, Protocol: "tcp"},
		localapi.PortMapping{HostPort: 31001, ContainerPort: 8080, Protocol: "tcp"}), nil)
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "host port 31001/TCP is already mapped on node node-a by endpoint "+first.Endpoint) {
		t.Fatalf("second ADD of 31001/tcp: %v (status %d), want 400 naming the host port and endpoint %s", err, apiStatus(err), first.Endpoint)
	}
	if w := getEndpoint(t, store, endpointName("node-a", "mesos", "c2", "eth0")); w != nil {
		t.Errorf("the refused ADD stored endpoint %s", w.Metadata.Name)
	}
	// The refused ADD took no address: a new ADD of c2 gets one.
	if err := n.client.Do(ctx, localapi.PathCNIAdd, withPorts("c2", localapi.PortMapping{HostPort: 31001, ContainerPort: 53, Protocol: "udp"}), nil); err != nil {
		t.Fatalf("ADD of 31001/udp: %v", err)
	}

	err = n.client.Do(ctx, localapi.PathCNIAdd, withPorts("c3", localapi.PortMapping{HostPort: 31005, ContainerPort: 80, Protocol: "gre"}), nil)
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `portMappings[0].protocol: expected "tcp", "udp" or "sctp", got "gre"`) {
		t.Fatalf("ADD with protocol gre: %v (status %d)", err, apiStatus(err))
	}

	// Two ADDs race for one host port: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, cid := range []string{"r1", "r2"} {
		wg.Go(func() {
			errs[i] = n.client.Do(ctx, localapi.PathCNIAdd, withPorts(cid, localapi.PortMapping{HostPort: 31010, ContainerPort: 80}), nil)
		})
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case apiStatus(err) == http.StatusBadRequest && strings.Contains(err.Error(), "host port 31010/TCP is already mapped"):
			refused++
		default:
			t.Errorf("racing ADD: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("racing ADDs for 31010/tcp: %d succeeded and %d were refused, want 1 and 1", ok, refused)
	}
}
