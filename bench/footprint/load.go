package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/test/hostnode"
)

const (
	localPool  = "bench-local"  // the endpoints' addresses: /26 blocks
	remotePool = "bench-remote" // the remote nodes' /26 blocks
	network    = "bench-footprint"
	// policiesPerEndpoint is how many policies select each endpoint: the
	// policies are in groups of this size, each selecting one label value.
	policiesPerEndpoint = 10
	// roleSets is the number of role label values; policy rules select
	// sources by role.
	roleSets = 50
)

// groups is the number of app label values the policies select on.
func groups(policies int) int { return max(policies/policiesPerEndpoint, 1) }

// clusterResources are the resources calyxctl applies: the pools, the
// remote nodes (on the host's subnet) and the policies.
func clusterResources(s settings) []api.Resource {
	tm := func(kind string) api.TypeMeta { return api.TypeMeta{Kind: kind, APIVersion: api.APIVersion} }
	rs := []api.Resource{
		&api.IPPool{TypeMeta: tm(api.KindIPPool), Metadata: api.ObjectMeta{Name: localPool},
			Spec: api.IPPoolSpec{CIDR: "10.64.0.0/16", BlockSize: 26, VXLANMode: api.EncapNever}},
		&api.IPPool{TypeMeta: tm(api.KindIPPool), Metadata: api.ObjectMeta{Name: remotePool},
			Spec: api.IPPoolSpec{CIDR: remoteCIDR.String(), BlockSize: remoteBlockBits, VXLANMode: api.EncapNever}},
	}
	for i := range s.remoteNodes {
		rs = append(rs, &api.Node{TypeMeta: tm(api.KindNode), Metadata: api.ObjectMeta{Name: remoteNode(i)},
			Spec: api.NodeSpec{BGP: &api.NodeBGPSpec{IPv4Address: fmt.Sprintf("192.0.2.%d/24", remoteBase+i)}}})
	}
	rng := rand.New(rand.NewPCG(11, 10))
	tcp, udp := api.ProtocolFromString("TCP"), api.ProtocolFromString("UDP")
	private := []string{"172.16.0.0/12", "192.168.0.0/16"}
	g := groups(s.policies)
	for j := range s.policies {
		order := float64(j)
		p := &api.GlobalNetworkPolicy{TypeMeta: tm(api.KindGlobalNetworkPolicy), Metadata: api.ObjectMeta{Name: fmt.Sprintf("bench-p%04d", j)},
			Spec: api.GlobalNetworkPolicySpec{Order: &order, Selector: fmt.Sprintf(`app == "a%d"`, j%g),
				Types: []string{api.PolicyTypeIngress},
				Ingress: []api.Rule{
					{Action: api.ActionAllow, Protocol: &tcp, Source: api.EntityRule{Selector: fmt.Sprintf(`role == "r%d"`, rng.IntN(roleSets))},
						Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(uint16(1024 + rng.IntN(7000))), {MinPort: 8000, MaxPort: 8100}}}},
					{Action: api.ActionDeny, Protocol: &udp, Source: api.EntityRule{Nets: private},
						Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(53)}}},
					{Action: api.ActionAllow, Protocol: &tcp, Source: api.EntityRule{Nets: []string{"10.0.0.0/8"}},
						Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(5201)}}},
				}}}
		if (j/g)%2 == 0 { // every other policy of a group
			p.Spec.Types = append(p.Spec.Types, api.PolicyTypeEgress)
			p.Spec.Egress = []api.Rule{
				{Action: api.ActionDeny, Protocol: &tcp, Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(25)}}},
				{Action: api.ActionAllow, Destination: api.EntityRule{NotNets: private}},
			}
		}
		rs = append(rs, p)
	}
	return rs
}

func remoteNode(i int) string { return fmt.Sprintf("bench-remote-%03d", i) }

// loadCluster applies the cluster's resources, writes the remote blocks'
// affinities and waits until calyx-node has a route to each in the kernel.
func (w *world) loadCluster(ctx context.Context, s settings) error {
	doc, err := api.EncodeYAML(clusterResources(s))
	if err != nil {
		return err
	}
	if _, _, err := w.node.Ctl(ctx, string(doc), "apply", "-f", "-"); err != nil {
		return err
	}
	if err := w.writeRemoteAffinities(ctx, s); err != nil {
		return err
	}
	return waitFor(ctx, 3*time.Minute, fmt.Sprintf("%d remote routes in the kernel", s.remoteRoutes), func() (bool, string, error) {
		remote, _, err := w.kernelRoutes(ctx)
		return remote == s.remoteRoutes, fmt.Sprintf("%d routes via other hosts", remote), err
	})
}

// writeRemoteAffinities gives the remote nodes s.remoteRoutes blocks,
// round robin: each an affinity "<node> claimed <block>" written to etcd
// under IPAM's key layout, which calyx-node's affinity syncer delivers to
// calc, which makes it a route. Only the affinities are written, not the
// blocks: calyx-node reads no other node's blocks, and IPAM's claim path
// lists every block of the pool per claim, which makes 10,000 claims take
// minutes (an IPAM cost, B2's subject, not this benchmark's).
func (w *world) writeRemoteAffinities(ctx context.Context, s settings) error {
	f := w.node.PKI()
	store, err := datastore.New(ctx, datastore.Config{Endpoints: []string{w.node.Endpoint()}, CAFile: f.CACert,
		CertFile: f.ClientCert, KeyFile: f.ClientKey, Dial: w.dialHost}, nil)
	if err != nil {
		return fmt.Errorf("connecting to calyx-node's etcd: %w", err)
	}
	defer store.Close()
	puts := remoteAffinities(s)
	for len(puts) > 0 {
		n := min(len(puts), perTxn)
		if _, _, err := store.CAS(ctx, nil, puts[:n], nil); err != nil {
			return fmt.Errorf("writing remote block affinities: %w", err)
		}
		puts = puts[n:]
	}
	return nil
}

// perTxn is the number of affinities written per etcd transaction.
const perTxn = 200

// The remote pool: /26 blocks, as Calico's default, in a /10 (65,536
// blocks).
var remoteCIDR = netip.MustParsePrefix("10.128.0.0/10")

const remoteBlockBits = 26

// remoteAffinities are the remote nodes' block affinities: block i of
// remoteCIDR belongs to remote node i mod s.remoteNodes.
func remoteAffinities(s settings) []datastore.RawPut {
	value, _ := json.Marshal(map[string]string{"state": api.AffinityConfirmed}) // cannot fail
	base := binary.BigEndian.Uint32(remoteCIDR.Addr().AsSlice())
	puts := make([]datastore.RawPut, s.remoteRoutes)
	for i := range puts {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i)<<(32-remoteBlockBits))
		block := netip.PrefixFrom(netip.AddrFrom4(a), remoteBlockBits)
		puts[i] = datastore.RawPut{Key: ipam.AffinityKey(remoteNode(i%s.remoteNodes), block), Value: value}
	}
	return puts
}

// dialHost opens TCP connections from inside the host namespace, where
// calyx-node's etcd listens on the loopback.
func (w *world) dialHost(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := w.host.Do(func(ns.NetNS) error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// netConf is endpoint i's CNI network config, as Mesos hands it to the
// plugin: the network_info labels the policies select on.
func netConf(socket string, i, policies int) ([]byte, error) {
	labels := []map[string]string{
		{"key": "app", "value": fmt.Sprintf("a%d", i%groups(policies))},
		{"key": "role", "value": fmt.Sprintf("r%d", i%roleSets)},
	}
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": network, "type": "calyx",
		"log_level": "warning", "agent_socket": socket,
		"ipam": map[string]any{"type": "calyx-ipam", "ipv4_pools": []string{localPool}},
		"args": map[string]any{"org.apache.mesos": map[string]any{"network_info": map[string]any{
			"name": network, "labels": map[string]any{"labels": labels}}}}})
}

// programming is what attaching the endpoints cost.
type programming struct {
	wall    time.Duration
	addP50  float64 // ms
	peakRSS uint64  // the highest sampled RSS, bytes
	cpuPct  float64 // calyx-node's CPU over the attach, % of one core
}

func (p programming) record(rep *report.Report) {
	rep.Add("programming_peak_rss_mb", mb(p.peakRSS))
	rep.Add("programming_cpu_pct", p.cpuPct)
	rep.Add("programming_s", p.wall.Seconds())
	rep.Add("programming_add_p50_ms", p.addP50)
}

// attachAll ADDs every container with the calyx plugin, s.parallel at a
// time, sampling calyx-node meanwhile, and waits until calyx-node reports
// every endpoint and the kernel has a route to each.
func (w *world) attachAll(ctx context.Context, s settings) (programming, error) {
	var p programming
	smp := startSampler(w.pid, 100*time.Millisecond)
	start := time.Now()
	var mu sync.Mutex
	var adds []time.Duration
	err := forEach(ctx, s.endpoints, s.parallel, func(i int) error {
		d, err := w.cniAdd(ctx, i, s.policies)
		mu.Lock()
		adds = append(adds, d)
		mu.Unlock()
		return err
	})
	if err == nil {
		err = waitFor(ctx, 2*time.Minute, fmt.Sprintf("%d endpoints programmed", s.endpoints), func() (bool, string, error) {
			st, err := w.nodeStatus(ctx)
			if err != nil {
				return false, "", err
			}
			_, local, err := w.kernelRoutes(ctx)
			return st.Datastore.InSync && len(st.Endpoints) == s.endpoints && local == s.endpoints,
				fmt.Sprintf("calyx-node reports %d endpoints (in sync: %t), the kernel has %d endpoint routes",
					len(st.Endpoints), st.Datastore.InSync, local), err
		})
	}
	p.wall = time.Since(start)
	samples, serr := smp.stop()
	if err != nil {
		return p, err
	}
	if serr != nil {
		return p, serr
	}
	p.addP50 = report.Ms(report.Percentile(adds, 0.5))
	for _, s := range samples {
		p.peakRSS = max(p.peakRSS, s.rss)
	}
	p.cpuPct = cpuPct(samples[0], samples[len(samples)-1])
	return p, nil
}

// cniAdd runs the calyx plugin's ADD for container i in the host
// namespace, as a runtime does: CNI_* in the environment, the network
// config on stdin. It returns the ADD's wall time.
func (w *world) cniAdd(ctx context.Context, i, policies int) (time.Duration, error) {
	conf, err := netConf(w.node.Socket(), i, policies)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(w.binDir, "calyx"))
	cmd.Env = []string{"CNI_COMMAND=ADD", fmt.Sprintf("CNI_CONTAINERID=bench-%05d", i), "CNI_NETNS=/run/netns/" + w.ctrs[i],
		"CNI_IFNAME=eth0", "CNI_PATH=" + w.binDir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := hostnode.RunIn(w.host, cmd); err != nil {
		return 0, fmt.Errorf("calyx ADD of container %d: %w: %s %s", i, err, bytes.TrimSpace(out.Bytes()), bytes.TrimSpace(errb.Bytes()))
	}
	d := time.Since(start)
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.IPs) == 0 {
		return d, fmt.Errorf("calyx ADD of container %d printed %q, want a result with an address", i, out.String())
	}
	if _, err := netip.ParsePrefix(res.IPs[0].Address); err != nil {
		return d, fmt.Errorf("calyx ADD of container %d: address %q: %w", i, res.IPs[0].Address, err)
	}
	return d, nil
}
