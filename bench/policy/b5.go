package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/test/hostnode"
)

// B5: datastore write → enforced in the kernel. A real calyx-node runs in
// a host namespace with its embedded etcd; a client and a server workload
// are attached with the real calyx CNI plugin; background load is 1,000
// endpoints of another node in a selector and 100 policies. The client
// sends numbered ICMP echo requests to the server every probeEvery, each a
// new flow. Each sample writes one resource through the datastore
// client and measures from the moment the write is sent until the first
// probe that shows the new verdict (the first echo after a change to
// allow; the first probe never echoed after a change to deny). The peer is
// a raw etcd watch on the same etcd: the time from the same write to its
// event, which is the floor any agent built on etcd pays.
//
// Cases: policy (a GlobalNetworkPolicy's rule flips between Allow and
// Deny: the policy chain is rewritten) and set (a GlobalNetworkSet gains or
// loses the client's address: one set element).

const (
	b5Samples  = 40
	probeEvery = time.Millisecond
	b5Pool     = "10.69.0.0/16"
)

var b5Cases = []string{"policy", "set"}

type b5World struct {
	work           string
	host, cli, srv ns.NetNS
	node           *hostnode.Node
	store          *datastore.Client
	raw            *clientv3.Client
	cliIP, srvIP   netip.Addr
	probes         *prober
	cleanup        []func()
}

func (w *b5World) close() {
	for i := len(w.cleanup) - 1; i >= 0; i-- {
		w.cleanup[i]()
	}
}

// nsDial dials from inside netns: the embedded etcd listens on the host
// namespace's loopback.
func nsDial(netns ns.NetNS) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := netns.Do(func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
}

func newB5World(ctx context.Context) (_ *b5World, err error) {
	w := &b5World{}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	bin, rm, err := hostnode.BuildTemp("calyx-b5-bin-")
	if err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, rm)
	if w.work, err = os.MkdirTemp("", "calyx-b5-"); err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, func() { _ = os.RemoveAll(w.work) })
	for _, p := range []*ns.NetNS{&w.host, &w.cli, &w.srv} {
		n, err := testutils.NewNS()
		if err != nil {
			return nil, fmt.Errorf("creating a namespace: %w", err)
		}
		*p = n
		w.cleanup = append(w.cleanup, func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
		if err := n.Do(func(ns.NetNS) error {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			return netlink.LinkSetUp(lo)
		}); err != nil {
			return nil, fmt.Errorf("bringing lo up: %w", err)
		}
	}
	logf("b5: starting calyx-node")
	if w.node, err = hostnode.Start(ctx, hostnode.Config{BinDir: bin, NS: w.host, Name: "b5-host", WorkDir: w.work,
		Args: []string{"--log-level", "warn"}}); err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, func() { _ = w.node.Stop() })
	f := w.node.PKI()
	dial := nsDial(w.host)
	if w.store, err = datastore.New(ctx, datastore.Config{Endpoints: []string{w.node.Endpoint()}, CAFile: f.CACert,
		CertFile: f.ClientCert, KeyFile: f.ClientKey, Dial: dial}, nil); err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, func() { _ = w.store.Close() })
	tlsCfg, err := (transport.TLSInfo{CertFile: f.ClientCert, KeyFile: f.ClientKey, TrustedCAFile: f.CACert}).ClientConfig()
	if err != nil {
		return nil, err
	}
	if w.raw, err = clientv3.New(clientv3.Config{Endpoints: []string{w.node.Endpoint()}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop(), TLS: tlsCfg, DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}}); err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, func() { _ = w.raw.Close() })

	if err := w.apply(ctx, b5Background()...); err != nil {
		return nil, fmt.Errorf("background resources: %w", err)
	}
	if w.cliIP, err = w.attach(ctx, bin, w.cli, "b5-client", "client"); err != nil {
		return nil, err
	}
	if w.srvIP, err = w.attach(ctx, bin, w.srv, "b5-server", "server"); err != nil {
		return nil, err
	}
	if w.probes, err = startProber(w.cli, w.srvIP); err != nil {
		return nil, err
	}
	w.cleanup = append(w.cleanup, w.probes.stop)
	return w, nil
}

func (w *b5World) apply(ctx context.Context, rs ...api.Resource) error {
	for _, r := range rs {
		if _, err := w.store.Apply(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// b5Background is the load beside the two workloads: an IP pool, 1,000
// endpoints of another node that a selector picks, and 100 policies that
// select the server but are ordered after the gates.
func b5Background() []api.Resource {
	pool := &api.IPPool{TypeMeta: typeMeta(api.KindIPPool), Metadata: api.ObjectMeta{Name: "b5"},
		Spec: api.IPPoolSpec{CIDR: b5Pool, BlockSize: 26}}
	rs := []api.Resource{pool}
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 70, byte(i >> 8), byte(i)})
		rs = append(rs, remoteEndpoint(i, a, "bulk"))
	}
	udp := api.ProtocolFromString("UDP")
	for j := range 100 {
		order := float64(100 + j)
		rs = append(rs, &api.GlobalNetworkPolicy{TypeMeta: typeMeta(api.KindGlobalNetworkPolicy),
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("b5-bulk-%03d", j)},
			Spec: api.GlobalNetworkPolicySpec{Order: &order, Selector: `role == "server"`, Types: []string{api.PolicyTypeIngress},
				Ingress: []api.Rule{{Action: api.ActionAllow, Protocol: &udp, Source: api.EntityRule{Selector: `role == "bulk"`},
					Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(uint16(7000 + j))}}}}}})
	}
	return append(rs, b5Gate("policy", gateNeutral), b5Gate("set", gateNeutral), b5Set(netip.Addr{}))
}

// States of the "policy" case's gate.
const (
	gateDeny    = iota // its rule denies the client
	gateAllow          // its rule allows the client
	gateNeutral        // its rule matches nobody: the later policies decide
)

// b5Gate is the policy a case flips: for "policy", its one rule allows or
// denies the client, or matches nobody; for "set", it allows the members
// of network set b5-set (and the set's nets flip). With neither allowing,
// the client's probes reach the end of the server's tier and are dropped.
func b5Gate(kind string, state int) api.Resource {
	icmp := api.ProtocolFromString("ICMP")
	order := 1.0
	rule := api.Rule{Action: api.ActionDeny, Protocol: &icmp, Source: api.EntityRule{Selector: `role == "client"`}}
	switch state {
	case gateAllow:
		rule.Action = api.ActionAllow
	case gateNeutral:
		rule.Action, rule.Source.Selector = api.ActionAllow, `role == "nobody"`
	}
	if kind == "set" {
		order = 2
		rule = api.Rule{Action: api.ActionAllow, Protocol: &icmp, Source: api.EntityRule{Selector: `b5 == "member"`}}
	}
	g := &api.GlobalNetworkPolicy{TypeMeta: typeMeta(api.KindGlobalNetworkPolicy), Metadata: api.ObjectMeta{Name: "b5-gate-" + kind},
		Spec: api.GlobalNetworkPolicySpec{Order: &order, Selector: `role == "server"`, Types: []string{api.PolicyTypeIngress},
			Ingress: []api.Rule{rule}}}
	g.SetDefaults()
	return g
}

// b5Set is the network set of the "set" case, holding a (none when
// invalid) besides a fixed net.
func b5Set(a netip.Addr) api.Resource {
	nets := []string{"192.0.2.0/28"}
	if a.IsValid() {
		nets = append(nets, netip.PrefixFrom(a, 32).String())
	}
	return &api.GlobalNetworkSet{TypeMeta: typeMeta(api.KindGlobalNetworkSet),
		Metadata: api.ObjectMeta{Name: "b5-set", Labels: map[string]string{"b5": "member"}}, Spec: api.GlobalNetworkSetSpec{Nets: nets}}
}

// attach runs the calyx CNI plugin's ADD for netns, as a runtime would,
// with the label role=<role>, and returns the workload's address.
func (w *b5World) attach(ctx context.Context, bin string, netns ns.NetNS, id, role string) (netip.Addr, error) {
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "b5", "type": "calyx", "agent_socket": w.node.Socket(),
		"ipam": map[string]any{"type": "calyx-ipam"},
		"args": map[string]any{"org.apache.mesos": map[string]any{"network_info": map[string]any{"name": "b5",
			"labels": map[string]any{"labels": []map[string]string{{"key": "role", "value": role}}}}}}})
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "calyx"))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns.Path(), "CNI_IFNAME=eth0", "CNI_PATH=" + bin, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := hostnode.RunIn(w.host, cmd); err != nil {
		return netip.Addr{}, fmt.Errorf("attaching %s: %w: %s%s", id, err, out.String(), errb.String())
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.IPs) == 0 {
		return netip.Addr{}, fmt.Errorf("attaching %s: unexpected result %s", id, out.String())
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("attaching %s: %w", id, err)
	}
	return p.Addr(), nil
}

// prober sends numbered ICMP echo requests from the client to the server
// and records when each was sent and whether it came back. Each probe has
// an ICMP identifier of its own, so each is a new conntrack flow that
// policy decides on (a stream of UDP packets from one socket would be one
// established flow, accepted before policy).
type prober struct {
	mu     sync.Mutex
	sent   []time.Time // by probe number
	echoed []bool
	conn   net.PacketConn
	dst    net.Addr
	done   chan struct{}
	wg     sync.WaitGroup
}

func startProber(cli ns.NetNS, srvIP netip.Addr) (*prober, error) {
	p := &prober{done: make(chan struct{}), dst: &net.IPAddr{IP: srvIP.AsSlice()}}
	if err := cli.Do(func(ns.NetNS) error {
		var err error
		p.conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return nil, fmt.Errorf("probe socket: %w", err)
	}
	p.wg.Go(func() { // receive echo replies
		buf := make([]byte, 1500)
		for {
			n, _, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 8 || buf[0] != 0 { // echo reply
				continue
			}
			num := int(binary.BigEndian.Uint16(buf[6:8]))<<16 | int(binary.BigEndian.Uint16(buf[4:6]))
			p.mu.Lock()
			if num < len(p.echoed) {
				p.echoed[num] = true
			}
			p.mu.Unlock()
		}
	})
	p.wg.Go(func() { // send
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
			}
			p.mu.Lock()
			num := len(p.sent)
			p.sent = append(p.sent, time.Now())
			p.echoed = append(p.echoed, false)
			p.mu.Unlock()
			_, _ = p.conn.WriteTo(echoRequest(uint16(num), uint16(num>>16)), p.dst)
		}
	})
	return p, nil
}

// echoRequest is an ICMP echo request with identifier id and sequence
// number seq.
func echoRequest(id, seq uint16) []byte {
	b := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'c', 'a', 'l', 'y', 'x', 'b', '5', '!'}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	return b
}

func (p *prober) stop() {
	close(p.done)
	_ = p.conn.Close()
	p.wg.Wait()
}

// mark is the sequence number of the next probe.
func (p *prober) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// flipped looks, among the probes sent from index start, for the moment
// the verdict became want and stayed so for settle probes; it returns the
// send time of the first probe showing it, or false when not yet.
func (p *prober) flipped(start int, want bool, settle int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Leave the newest probes time to come back.
	end := len(p.sent) - 20
	run := 0
	for i := start; i < end; i++ {
		if p.echoed[i] == want {
			run++
			if run == settle {
				return p.sent[i-settle+1], true
			}
		} else {
			run = 0
		}
	}
	return time.Time{}, false
}

// b5Sample flips case kind to allow (or deny) and returns the write →
// enforced time and the write → raw watch event time.
func (w *b5World) b5Sample(ctx context.Context, kind string, allow bool) (ours, raw time.Duration, err error) {
	var r api.Resource
	switch kind {
	case "policy":
		state := gateDeny
		if allow {
			state = gateAllow
		}
		r = b5Gate("policy", state)
	case "set":
		a := netip.Addr{}
		if allow {
			a = w.cliIP
		}
		r = b5Set(a)
	}
	ki, _ := api.LookupKind(r.GetTypeMeta().Kind)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := w.raw.Watch(wctx, datastore.ResourceKey(ki, r.GetObjectMeta().Name))
	// Let the watch register before the write (its first response is
	// the creation notice only with WithCreatedNotify; a short pause is
	// enough and is outside both measurements).
	time.Sleep(20 * time.Millisecond)
	start := w.probes.mark()
	t0 := time.Now()
	if _, err := w.store.Apply(ctx, r); err != nil {
		return 0, 0, err
	}
	select {
	case ev := <-events:
		if ev.Err() != nil {
			return 0, 0, ev.Err()
		}
		raw = time.Since(t0)
	case <-time.After(5 * time.Second):
		return 0, 0, errors.New("the raw watch saw no event within 5 s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if at, ok := w.probes.flipped(start, allow, 10); ok {
			return max(at.Sub(t0), 0), raw, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, raw, fmt.Errorf("%s case: the probes did not show %s within 10 s of the write", kind, map[bool]string{true: "allowed", false: "denied"}[allow])
}

// b5Run measures every case, alternating allow and deny.
func b5Run(ctx context.Context, rep *report.Report) error {
	w, err := newB5World(ctx)
	if err != nil {
		return fmt.Errorf("b5: %w", err)
	}
	defer w.close()
	for _, kind := range b5Cases {
		var ours, raw []time.Duration
		for i := range b5Samples + 2 {
			o, r, err := w.b5Sample(ctx, kind, i%2 == 0)
			if err != nil {
				return fmt.Errorf("b5: %w", err)
			}
			if i >= 2 { // the first flips warm up both sides
				ours, raw = append(ours, o), append(raw, r)
			}
		}
		if kind == "policy" { // hand the server back to the later policies
			if err := w.apply(ctx, b5Gate("policy", gateNeutral)); err != nil {
				return fmt.Errorf("b5: %w", err)
			}
		}
		for _, q := range []struct {
			name string
			p    float64
		}{{"p50", 0.50}, {"p99", 0.99}} {
			m := "b5/" + kind + "_" + q.name + "_ms"
			rep.Add(m, report.Ms(report.Percentile(ours, q.p)))
			rep.AddPeer(m, report.Ms(report.Percentile(raw, q.p)))
		}
		logf("b5 %-6s write→enforced p50 %.1f ms p99 %.1f ms; raw watch p50 %.1f ms p99 %.1f ms", kind,
			report.Ms(report.Percentile(ours, 0.5)), report.Ms(report.Percentile(ours, 0.99)),
			report.Ms(report.Percentile(raw, 0.5)), report.Ms(report.Percentile(raw, 0.99)))
	}
	return nil
}

// b5Specs are B5's report lines.
func b5Specs() []report.Spec {
	var specs []report.Spec
	for _, kind := range b5Cases {
		specs = append(specs,
			report.Spec{Metric: "b5/" + kind + "_p50_ms", Goal: "<= 50 ms", Met: func(o, _ float64) bool { return o <= 50 },
				PeerIs: "a raw etcd watch of the same write", Note: "write → first probe packet showing the new verdict"},
			report.Spec{Metric: "b5/" + kind + "_p99_ms", Goal: "<= 250 ms", Met: func(o, _ float64) bool { return o <= 250 },
				PeerIs: "a raw etcd watch of the same write"})
	}
	return specs
}
