package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// These tests run calyx-node over a test etcd and the fake kernel: no
// root needed. The kernel tests in node_kernel_test.go repeat the
// important paths with real namespaces and packets.

func addReq(a localapi.Attachment) localapi.AddRequest {
	return localapi.AddRequest{Attachment: a, IPAM: localapi.IPAMRequest{AssignIPv4: true}, Orchestrator: "mesos", Labels: map[string]string{"app": "web"}}
}

func TestAddReadyCheckDel(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	reg := prometheus.NewRegistry()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, func(c *Config) { c.Registry = reg })
	ctx := t.Context()
	att := attachment("0f7c-2b1e", "eth0")

	var add localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	wantName := "node--a-mesos-0f7c--2b1e-eth0"
	if add.Endpoint != wantName || add.HostIfName != vethName(att.Handle()) || add.Gateway4 != gateway4 || add.Gateway6 != "" || add.MTU != 1500 {
		t.Errorf("ADD answer %+v", add)
	}
	if len(add.IPs) != 1 || !strings.HasPrefix(add.IPs[0], "10.65.") || !strings.HasSuffix(add.IPs[0], "/32") {
		t.Fatalf("ADD addresses %v, want one /32 from 10.65.0.0/16", add.IPs)
	}

	w := getEndpoint(t, store, wantName)
	if w == nil {
		t.Fatal("no endpoint stored")
	}
	wantLabels := map[string]string{"app": "web", LabelNetwork: "net1", LabelOrchestrator: "mesos"}
	if d := cmp.Diff(wantLabels, w.Metadata.Labels); d != "" {
		t.Errorf("endpoint labels (-want +got):\n%s", d)
	}
	if add.ContainerMAC != containerMAC(att.Handle()).String() {
		t.Errorf("ADD answered container MAC %q, want %q", add.ContainerMAC, containerMAC(att.Handle()))
	}
	wantSpec := api.WorkloadEndpointSpec{
		Orchestrator: "mesos", Workload: "0f7c-2b1e", Node: "node-a", ContainerID: "0f7c-2b1e", Endpoint: "eth0",
		InterfaceName: add.HostIfName, IPNetworks: add.IPs, MAC: add.ContainerMAC, Profiles: []string{"net1"},
	}
	if d := cmp.Diff(wantSpec, w.Spec); d != "" {
		t.Errorf("endpoint spec (-want +got):\n%s", d)
	}
	if w.Metadata.Annotations[AnnotationHandle] != "net1.0f7c-2b1e.eth0" {
		t.Errorf("handle annotation %q", w.Metadata.Annotations[AnnotationHandle])
	}
	p, err := store.Get(ctx, profileKind(), "net1")
	if err != nil {
		t.Fatalf("the network's profile was not created: %v", err)
	}
	if sel := p.(*api.Profile).Spec.Ingress[0].Source.Selector; sel != `calyx.dev/network == "net1"` {
		t.Errorf("profile ingress selector %q", sel)
	}

	// The plugin creates the veth, then READY programs the host side. This
	// plugin, like an older one, ignored the MAC ADD chose: READY records
	// the one it reports.
	fake.AddLink(add.HostIfName)
	const mac = "02:42:0a:41:00:07"
	if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: mac}, nil); err != nil {
		t.Fatal(err)
	}
	ip := strings.TrimSuffix(add.IPs[0], "/32")
	want := []string{
		"link " + add.HostIfName + " up",
		"neigh " + ip + " dev " + add.HostIfName + " lladdr " + mac + " PERMANENT",
		"route " + add.IPs[0] + " dev " + add.HostIfName + " proto 80 scope link",
		"sysctl net/ipv4/conf/" + add.HostIfName + "/forwarding=1",
		"sysctl net/ipv4/conf/" + add.HostIfName + "/proxy_arp=1",
		"sysctl net/ipv4/conf/" + add.HostIfName + "/rp_filter=1",
		"sysctl net/ipv4/ip_forward=1",
		"sysctl net/ipv4/neigh/" + add.HostIfName + "/proxy_delay=0",
	}
	// The block's blackhole route comes with the affinity's event, in
	// its own time; it is not the endpoint's.
	got := slices.DeleteFunc(fake.Render(), func(l string) bool { return strings.HasPrefix(l, "route blackhole ") })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("kernel after READY (-want +got):\n%s", d)
	}
	if got := getEndpoint(t, store, wantName).Spec.MAC; got != mac {
		t.Errorf("endpoint MAC %q, want %q", got, mac)
	}
	var check localapi.CheckResponse
	if err := n.client.Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: att}, &check); err != nil || len(check.Problems) != 0 {
		t.Errorf("CHECK after READY: %+v, %v", check, err)
	}
	if c := metricValue(t, reg, "calyx_local_endpoints"); c != 1 {
		t.Errorf("calyx_local_endpoints = %v", c)
	}

	// A second ADD of the same attachment is refused: the interface exists.
	err = n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), nil)
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "already has interface eth0") {
		t.Errorf("second ADD: %v, want 409 interface exists", err)
	}
	// From a plugin that creates the veth itself, it is answered with the
	// endpoint, marked existing: the plugin's create fails and it refuses
	// the ADD without undoing it.
	dup := addReq(att)
	dup.PluginCreatesVeth = true
	var again localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, dup, &again); err != nil || !again.Existing || again.Endpoint != add.Endpoint {
		t.Errorf("second ADD from a plugin that creates the veth: %+v, %v; want the endpoint, existing", again, err)
	}

	// DEL removes everything, and again, and with no ADD at all.
	for _, a := range []localapi.Attachment{att, att, attachment("never-added", "eth0")} {
		if err := n.client.Do(ctx, localapi.PathCNIDel, localapi.DelRequest{Attachment: a}, nil); err != nil {
			t.Fatalf("DEL %s: %v", a.Handle(), err)
		}
	}
	if got := leftAfterDel(fake.Render()); len(got) > 0 {
		t.Errorf("kernel after DEL: %q", got)
	}
	if getEndpoint(t, store, wantName) != nil {
		t.Error("endpoint left after DEL")
	}
	if _, err := ipam.New(store).IPsByHandle(ctx, att.Handle()); !ipam.IsNotFound(err) {
		t.Errorf("handle after DEL: %v, want not found", err)
	}
	if got := metricValue(t, reg, "calyx_cni_requests_total", "op", "add", "result", "error"); got != 1 {
		t.Errorf("calyx_cni_requests_total{op=add,result=error} = %v", got)
	}
	if got := histogramCount(t, reg, "calyx_dataplane_endpoint_program_seconds"); got != 1 {
		t.Errorf("calyx_dataplane_endpoint_program_seconds count = %d", got)
	}
}

// TestPluginCreatesVeth: with the host end created while ADD allocates,
// before or after the loop first sees the endpoint, READY answers once the
// host side is programmed.
func TestPluginCreatesVeth(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	ctx := t.Context()
	for _, before := range []bool{true, false} {
		att := attachment(fmt.Sprintf("ctr-%v", before), "eth0")
		req := addReq(att)
		req.PluginCreatesVeth = true
		if before {
			fake.AddLink(vethName(att.Handle()))
		}
		var add localapi.AddResponse
		if err := n.client.Do(ctx, localapi.PathCNIAdd, req, &add); err != nil {
			t.Fatal(err)
		}
		if add.Existing || add.HostIfName != vethName(att.Handle()) {
			t.Errorf("ADD answer %+v", add)
		}
		if !before {
			fake.AddLink(add.HostIfName)
		}
		if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: add.ContainerMAC}, nil); err != nil {
			t.Fatal(err)
		}
		route := "route " + add.IPs[0] + " dev " + add.HostIfName + " proto 80 scope link"
		if !slices.Contains(fake.Render(), route) {
			t.Errorf("veth created before ADD %v: kernel after READY lacks %q:\n%s", before, route, strings.Join(fake.Render(), "\n"))
		}
	}
}

// metricValue returns the value of the gauge or counter series of name
// with the given label pairs (0: none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// READY reports the kernel time in a response header for the benchmark.
func TestReadyReportsProgramTime(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	att := attachment("ctr", "eth0")
	var add localapi.AddResponse
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	fake.AddLink(add.HostIfName)
	body, _ := json.Marshal(localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: "02:00:00:00:00:01"})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", n.cfg.Socket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("http://calyx-node"+localapi.PathCNIReady, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(headerProgramSeconds) == "" {
		t.Errorf("READY answered %d with %s=%q", resp.StatusCode, headerProgramSeconds, resp.Header.Get(headerProgramSeconds))
	}
}

// A READY reporting the MAC that ADD chose and recorded writes nothing to
// the datastore: the endpoint's resource version does not move, and the
// kernel still gets the neighbour entry.
func TestReadyWithRecordedMACDoesNotWrite(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	ctx := t.Context()
	att := attachment("ctr", "eth0")
	var add localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(add.ContainerMAC)
	if err != nil || mac[0] != 0x02 {
		t.Fatalf("ADD answered container MAC %q, want a locally administered unicast MAC", add.ContainerMAC)
	}
	before := getEndpoint(t, store, add.Endpoint)
	if before.Spec.MAC != add.ContainerMAC {
		t.Fatalf("endpoint MAC %q after ADD, want %q", before.Spec.MAC, add.ContainerMAC)
	}

	fake.AddLink(add.HostIfName)
	if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: add.ContainerMAC}, nil); err != nil {
		t.Fatal(err)
	}
	after := getEndpoint(t, store, add.Endpoint)
	if after.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
		t.Errorf("READY with the recorded MAC wrote the endpoint: resource version %s -> %s", before.Metadata.ResourceVersion, after.Metadata.ResourceVersion)
	}
	ip := strings.TrimSuffix(add.IPs[0], "/32")
	if want := "neigh " + ip + " dev " + add.HostIfName + " lladdr " + add.ContainerMAC + " PERMANENT"; !slices.Contains(fake.Render(), want) {
		t.Errorf("kernel after READY lacks %q:\n%s", want, strings.Join(fake.Render(), "\n"))
	}

	// A retried ADD answers the same MAC: it is stable for the attachment.
	if err := n.client.Do(ctx, localapi.PathCNIDel, localapi.DelRequest{Attachment: att}, nil); err != nil {
		t.Fatal(err)
	}
	var again localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &again); err != nil {
		t.Fatal(err)
	}
	if again.ContainerMAC != add.ContainerMAC {
		t.Errorf("second ADD answered MAC %q, first %q", again.ContainerMAC, add.ContainerMAC)
	}
}

// An ADD retried after a crash, when the endpoint exists but its veth does
// not, reuses the endpoint's addresses. The first ADD's plugin process is
// gone (alive says so), as after a crash.
func TestRetriedAddReusesAddresses(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables(), alive: func(int) bool { return false }}, nil)
	att := attachment("ctr", "eth0")
	var first, second localapi.AddResponse
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(att), &first); err != nil {
		t.Fatal(err)
	}
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(att), &second); err != nil {
		t.Fatalf("retried ADD without a veth: %v", err)
	}
	if first.Existing || !second.Existing {
		t.Errorf("existing: first ADD %v, retried %v; want false, true", first.Existing, second.Existing)
	}
	second.Existing = false
	if d := cmp.Diff(first, second); d != "" {
		t.Errorf("retried ADD answered differently (-first +second):\n%s", d)
	}
}

// A failed ADD leaves nothing behind: here the request's labels make the
// endpoint invalid after the address was allocated.
func TestFailedAddUndoes(t *testing.T) {
	etcd, store := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	att := attachment("ctr", "eth0")
	req := addReq(att)
	req.Labels = map[string]string{"bad key!": "x"}
	err := n.client.Do(t.Context(), localapi.PathCNIAdd, req, nil)
	if apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("ADD with an invalid label: %v, want 400", err)
	}
	if _, err := ipam.New(store).IPsByHandle(t.Context(), att.Handle()); !ipam.IsNotFound(err) {
		t.Errorf("the failed ADD's handle: %v, want released", err)
	}
	report, err := ipam.New(store).Check(t.Context())
	if err != nil || len(report.Leaked) != 0 {
		t.Errorf("leaked after a failed ADD: %+v, %v", report.Leaked, err)
	}
}

func TestAddWithoutPoolExplains(t *testing.T) {
	n := startNode(t, testStartEtcdNoPool(t), hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(attachment("ctr", "eth0")), nil)
	if err == nil || !strings.Contains(err.Error(), "no IP pool matches node node-a: create one with `calyxctl apply") {
		t.Errorf("ADD with no pool: %v", err)
	}
}

func testStartEtcdNoPool(t *testing.T) *datastore.Embedded {
	t.Helper()
	e, c := startTestEtcd(t)
	if _, err := c.Delete(t.Context(), mustKindInfo(api.KindIPPool), "pool4", ""); err != nil {
		t.Fatal(err)
	}
	return e
}

func mustKindInfo(name string) api.KindInfo { k, _ := api.LookupKind(name); return k }

// An operator's profile of the same name is never overwritten.
func TestOperatorProfileKept(t *testing.T) {
	etcd, store := startTestEtcd(t)
	p := profileKind().New().(*api.Profile)
	p.Metadata.Name = "net1"
	p.Spec.Egress = []api.Rule{{Action: api.ActionDeny}}
	p.SetDefaults()
	if _, err := store.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(attachment("ctr", "eth0")), nil); err != nil {
		t.Fatal(err)
	}
	got, _ := store.Get(t.Context(), profileKind(), "net1")
	if spec := got.(*api.Profile).Spec; len(spec.Ingress) != 0 || spec.Egress[0].Action != api.ActionDeny {
		t.Errorf("the operator's profile was changed: %+v", spec)
	}
}

func TestCheckReportsProblems(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, nil)
	ctx := t.Context()
	att := attachment("ctr", "eth0")
	var add localapi.AddResponse
	if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(att), &add); err != nil {
		t.Fatal(err)
	}
	fake.AddLink(add.HostIfName)
	if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: att, HostIfName: add.HostIfName, ContainerMAC: "02:00:00:00:00:01"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := fake.DeleteRoute(route.Route{Dst: netip.MustParsePrefix(add.IPs[0])}); err != nil {
		t.Fatal(err)
	}
	if err := ipam.New(store).ReleaseByHandle(ctx, att.Handle()); err != nil {
		t.Fatal(err)
	}
	var check localapi.CheckResponse
	if err := n.client.Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: att}, &check); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"IPAM handle net1.ctr.eth0 holds no addresses (the endpoint lists [" + add.IPs[0] + "])",
		"no host route to " + add.IPs[0] + " (want " + add.IPs[0] + " dev " + add.HostIfName + " proto 80 scope link)",
	}
	if d := cmp.Diff(want, check.Problems); d != "" {
		t.Errorf("CHECK problems (-want +got):\n%s", d)
	}
	fake.RemoveLink(add.HostIfName)
	if err := n.client.Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: att}, &check); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(check.Problems, "host interface "+add.HostIfName+" is missing") {
		t.Errorf("CHECK with the veth gone: %q", check.Problems)
	}
	if err := n.client.Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: attachment("nope", "eth0")}, &check); err != nil || len(check.Problems) != 1 {
		t.Errorf("CHECK of an unknown attachment: %+v, %v", check, err)
	}
}

// CNI GC releases every attachment of the network that is not valid:
// endpoints and calyx-ipam allocations alike, and nothing of other
// networks.
func TestCNIGC(t *testing.T) {
	etcd, store := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	ctx := t.Context()
	keep, stale1, stale2 := attachment("keep", "eth0"), attachment("stale1", "eth0"), attachment("stale2", "eth1")
	other := localapi.Attachment{Network: "net2", ContainerID: "stale1", IfName: "eth1"}
	ipamOnly := attachment("bridged", "eth0")
	for _, a := range []localapi.Attachment{keep, stale1, stale2, other} {
		if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(a), nil); err != nil {
			t.Fatal(err)
		}
	}
	var ia localapi.IPAMAddResponse
	if err := n.client.Do(ctx, localapi.PathIPAMAdd, localapi.IPAMAddRequest{Attachment: ipamOnly, IPAM: localapi.IPAMRequest{AssignIPv4: true}}, &ia); err != nil {
		t.Fatal(err)
	}
	var gc localapi.GCResponse
	if err := n.client.Do(ctx, localapi.PathCNIGC, localapi.GCRequest{Network: "net1", Valid: []localapi.Attachment{keep}}, &gc); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gc.Released, func(a, b localapi.Attachment) int { return strings.Compare(a.Handle(), b.Handle()) })
	if d := cmp.Diff([]localapi.Attachment{ipamOnly, stale1, stale2}, gc.Released); d != "" {
		t.Errorf("released (-want +got):\n%s", d)
	}
	alloc := ipam.New(store)
	for _, a := range []localapi.Attachment{keep, other} {
		if ips, err := alloc.IPsByHandle(ctx, a.Handle()); err != nil || len(ips) != 1 {
			t.Errorf("%s after GC: %v, %v; want kept", a.Handle(), ips, err)
		}
	}
	for _, a := range gc.Released {
		if _, err := alloc.IPsByHandle(ctx, a.Handle()); !ipam.IsNotFound(err) {
			t.Errorf("%s after GC: %v, want released", a.Handle(), err)
		}
	}
	if getEndpoint(t, store, "node--a-mesos-stale1-eth0") != nil || getEndpoint(t, store, "node--a-mesos-keep-eth0") == nil {
		t.Error("GC deleted the wrong endpoints")
	}
}

func TestIPAMOnly(t *testing.T) {
	etcd, store := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	ctx := t.Context()
	a := attachment("bridged", "eth0")
	var resp localapi.IPAMAddResponse
	if err := n.client.Do(ctx, localapi.PathIPAMAdd, localapi.IPAMAddRequest{Attachment: a, IPAM: localapi.IPAMRequest{AssignIPv4: true}}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.IPs) != 1 || !strings.HasPrefix(resp.IPs[0].Address, "10.65.") || !strings.HasSuffix(resp.IPs[0].Address, "/16") || resp.IPs[0].Gateway != "" {
		t.Errorf("IPAM ADD answer %+v, want one 10.65.x.y/16 without gateway", resp)
	}
	if eps, _, _ := store.List(ctx, wepKind(), nil); len(eps) != 0 {
		t.Errorf("IPAM ADD wrote endpoints: %v", eps)
	}
	for range 2 {
		if err := n.client.Do(ctx, localapi.PathIPAMDel, localapi.IPAMDelRequest{Attachment: a}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ipam.New(store).IPsByHandle(ctx, a.Handle()); !ipam.IsNotFound(err) {
		t.Errorf("after IPAM DEL: %v", err)
	}
}

// Mesos runs the ADDs of a container's networks in parallel.
func TestParallelAdds(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	ips := make([]string, 8)
	for i := range 8 {
		wg.Go(func() {
			a := localapi.Attachment{Network: []string{"net1", "Net_2"}[i%2], ContainerID: "ctr" + string(rune('a'+i/2)), IfName: []string{"eth0", "eth1"}[i%2]}
			var resp localapi.AddResponse
			errs[i] = n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(a), &resp)
			if len(resp.IPs) > 0 {
				ips[i] = resp.IPs[0]
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
		}
	}
	slices.Sort(ips)
	if len(slices.Compact(ips)) != 8 {
		t.Errorf("addresses not distinct: %v", ips)
	}
}

// An endpoint whose veth vanished (its container's namespace was deleted
// without DEL) is released after the grace period.
func TestGCVanishedVeth(t *testing.T) {
	etcd, store := startTestEtcd(t)
	fake := route.NewFake()
	n := startNode(t, etcd, hooks{kernel: fake, policy: fakeNftables()}, func(c *Config) { c.GCGrace = 200 * time.Millisecond })
	ctx := t.Context()
	gone, kept := attachment("gone", "eth0"), attachment("kept", "eth0")
	for _, a := range []localapi.Attachment{gone, kept} {
		var add localapi.AddResponse
		if err := n.client.Do(ctx, localapi.PathCNIAdd, addReq(a), &add); err != nil {
			t.Fatal(err)
		}
		fake.AddLink(add.HostIfName)
		if err := n.client.Do(ctx, localapi.PathCNIReady, localapi.ReadyRequest{Attachment: a, HostIfName: add.HostIfName, ContainerMAC: "02:00:00:00:00:01"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	fake.RemoveLink(vethName(gone.Handle()))
	alloc := ipam.New(store)
	// The endpoint delete and the address release are sent together, so
	// wait for both.
	testnet.WaitFor(t, "the vanished endpoint's address to be released and the endpoint deleted", func() bool {
		_, err := alloc.IPsByHandle(ctx, gone.Handle())
		return ipam.IsNotFound(err) && getEndpoint(t, store, "node--a-mesos-gone-eth0") == nil
	})
	if getEndpoint(t, store, "node--a-mesos-kept-eth0") == nil {
		t.Error("an endpoint with its veth was collected")
	}
}

// A handle of this node that no endpoint holds (an ADD that died between
// allocating and writing its endpoint) is released after the grace period;
// calyx-ipam's allocations under other plugins are not.
func TestGCLeakedHandle(t *testing.T) {
	etcd, store := startTestEtcd(t)
	alloc := ipam.New(store)
	ctx := t.Context()
	assign := func(handle string, extra map[string]string) {
		attrs := map[string]string{"node": "node-a", "network": "net1", "containerID": handle, "ifname": "eth0"}
		for k, v := range extra {
			attrs[k] = v
		}
		if _, err := alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net1." + handle + ".eth0", Attrs: attrs, Node: "node-a"}); err != nil {
			t.Fatal(err)
		}
	}
	assign("crashed", nil)
	assign("bridged", map[string]string{ipam.AttrIPAMOnly: "true"})
	if _, err := alloc.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "someone-elses", Node: "node-a"}); err != nil {
		t.Fatal(err)
	}
	startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, func(c *Config) { c.GCGrace = 200 * time.Millisecond })
	testnet.WaitFor(t, "the leaked handle to be released", func() bool {
		_, err := alloc.IPsByHandle(ctx, "net1.crashed.eth0")
		return ipam.IsNotFound(err)
	})
	for _, h := range []string{"net1.bridged.eth0", "someone-elses"} {
		if _, err := alloc.IPsByHandle(ctx, h); err != nil {
			t.Errorf("%s was collected: %v", h, err)
		}
	}
}

func TestBadRequests(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	for _, tc := range []struct {
		path string
		req  any
		want int
	}{
		{localapi.PathCNIAdd, localapi.AddRequest{Attachment: localapi.Attachment{Network: "n", IfName: "eth0"}}, http.StatusBadRequest},
		{localapi.PathCNIAdd, localapi.AddRequest{Attachment: attachment("c", "eth0"), Orchestrator: "k8s"}, http.StatusBadRequest},
		{localapi.PathCNIReady, localapi.ReadyRequest{Attachment: attachment("c", "eth0"), ContainerMAC: "02:00:00:00:00:01"}, http.StatusNotFound},
		{localapi.PathCNIReady, localapi.ReadyRequest{Attachment: attachment("c", "eth0"), ContainerMAC: "nope"}, http.StatusBadRequest},
		{localapi.PathCNIGC, localapi.GCRequest{}, http.StatusBadRequest},
	} {
		if err := n.client.Do(t.Context(), tc.path, tc.req, nil); apiStatus(err) != tc.want {
			t.Errorf("%s %+v: %v, want HTTP %d", tc.path, tc.req, err, tc.want)
		}
	}
	var st localapi.StatusResponse
	if err := n.client.Do(t.Context(), localapi.PathStatus, struct{}{}, &st); err != nil || !st.Ready || st.Node != "node-a" {
		t.Errorf("status %+v, %v", st, err)
	}
}

// A second calyx-node cannot take over a live socket; a stale one is
// replaced.
func TestSocketTakeover(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	if _, err := listenUnix(n.cfg.Socket); err == nil || !strings.Contains(err.Error(), "is serving it") {
		t.Errorf("listening on a live socket: %v", err)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", n.cfg.Socket+".stale")
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close()
	l2, err := listenUnix(n.cfg.Socket + ".stale")
	if err != nil {
		t.Fatalf("listening over a stale socket: %v", err)
	}
	_ = l2.Close()
}
