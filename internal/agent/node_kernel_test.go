package agent

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// Kernel tests: calyx-node runs in-process and programs a "host" network
// namespace (Config.Netns); containers are namespaces attached the way the
// calyx plugin attaches them. Nothing touches the root namespace. They
// need root, and ping (Debian iputils-ping).

// countingKernel counts the writes and dumps calyx-node makes.
type countingKernel struct {
	route.Kernel
	writes, dumps atomic.Int64
}

func (k *countingKernel) Dump() (route.State, error) { k.dumps.Add(1); return k.Kernel.Dump() }
func (k *countingKernel) SetLinkUp(l route.Link) error {
	k.writes.Add(1)
	return k.Kernel.SetLinkUp(l)
}

func (k *countingKernel) DeleteLink(l route.Link) error {
	k.writes.Add(1)
	return k.Kernel.DeleteLink(l)
}

func (k *countingKernel) ReplaceRoute(r route.Route) error {
	k.writes.Add(1)
	return k.Kernel.ReplaceRoute(r)
}

func (k *countingKernel) DeleteRoute(r route.Route) error {
	k.writes.Add(1)
	return k.Kernel.DeleteRoute(r)
}

func (k *countingKernel) SetNeigh(n route.Neigh) error {
	k.writes.Add(1)
	return k.Kernel.SetNeigh(n)
}

func (k *countingKernel) DeleteNeigh(n route.Neigh) error {
	k.writes.Add(1)
	return k.Kernel.DeleteNeigh(n)
}

func (k *countingKernel) WriteSysctls(s []route.Sysctl) error {
	k.writes.Add(int64(len(s)))
	return k.Kernel.WriteSysctls(s)
}

func (k *countingKernel) wrap(inner route.Kernel) route.Kernel {
	k.Kernel = inner
	return k
}

func nsName(n cnins.NetNS) string { return filepath.Base(n.Path()) }

// newHost makes a host namespace with an uplink holding 192.0.2.1/24 and
// the default route: proxy ARP answers for 169.254.1.1 only when the host
// has a route to it, as every real host does.
func newHost(t *testing.T) cnins.NetNS {
	t.Helper()
	host := testnet.NewNS(t)
	err := host.Do(func(cnins.NetNS) error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink1"}); err != nil {
			return err
		}
		for _, name := range []string{"uplink0", "uplink1"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		up, _ := netlink.LinkByName("uplink0")
		addr, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := netlink.AddrAdd(up, addr); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.ParseIP("192.0.2.254")})
	})
	if err != nil {
		t.Fatalf("setting up the host namespace: %v", err)
	}
	return host
}

// container is one attached container.
type container struct {
	ns  cnins.NetNS
	att localapi.Attachment
	add localapi.AddResponse
	ip  string
}

// attach does what the calyx plugin does: ADD, the veth with its container
// end created directly in the container's namespace, the container side
// (address, link route to 169.254.1.1, default route), then READY.
func attach(t *testing.T, n *testNode, host cnins.NetNS, cid string) *container {
	t.Helper()
	c := &container{ns: testnet.NewNS(t), att: attachment(cid, "eth0")}
	if err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(c.att), &c.add); err != nil {
		t.Fatal(err)
	}
	prefix := netip.MustParsePrefix(c.add.IPs[0])
	c.ip = prefix.Addr().String()
	err := host.Do(func(cnins.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: c.add.HostIfName, HardwareAddr: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}, MTU: c.add.MTU},
			PeerName:  c.att.IfName, PeerNamespace: netlink.NsFd(int(c.ns.Fd())),
		})
	})
	if err != nil {
		t.Fatalf("creating the veth: %v", err)
	}
	var mac string
	err = c.ns.Do(func(cnins.NetNS) error {
		l, err := netlink.LinkByName(c.att.IfName)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		gw := net.ParseIP(c.add.Gateway4)
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw})
	})
	if err != nil {
		t.Fatalf("configuring the container side: %v", err)
	}
	if err := n.client.Do(t.Context(), localapi.PathCNIReady, localapi.ReadyRequest{Attachment: c.att, HostIfName: c.add.HostIfName, ContainerMAC: mac}, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// ping pings dst from the container and returns ping's error and output.
func ping(from *container, dst string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", nsName(from.ns), "ping", "-n", "-W", "2"}, append(args, dst)...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustPing(t *testing.T, from *container, dst string) {
	t.Helper()
	if out, err := ping(from, dst, "-c", "2"); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, from.att.ContainerID, err, out)
	}
}

// kernelText is the host namespace's routing state as `ip` shows it: links
// (brief), every route of every table, permanent neighbours and the
// sysctls Calyx sets.
func kernelText(t *testing.T, host cnins.NetNS) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"-br", "link", "show"}, {"route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"},
		{"neigh", "show", "nud", "permanent"}, {"-6", "neigh", "show", "nud", "permanent"},
	} {
		out, err := exec.Command("ip", append([]string{"-n", nsName(host)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		b.Write(out)
	}
	hn, err := netns.Open(host.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer hn.Close()
	err = hn.Do(func() error {
		matches, _ := filepath.Glob("/proc/sys/net/ipv4/conf/calyx*/*")
		matches = append(matches, "/proc/sys/net/ipv4/ip_forward")
		for _, m := range matches {
			v, err := netns.ReadSysctl(strings.TrimPrefix(m, "/proc/sys/"))
			if err == nil {
				b.WriteString(m + "=" + v + "\n")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestKernelEndToEnd(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("needs ping (apt-get install iputils-ping)")
	}
	etcd, store := startTestEtcd(t)
	host := newHost(t)
	dataDir := t.TempDir() // kept across the restart: the same host
	start := func(k *countingKernel) *testNode {
		return startNode(t, etcd, hooks{wrap: k.wrap}, func(c *Config) {
			c.DataDir = dataDir
			c.Netns = host.Path()
			c.NodeIPv4 = "" // detected from the host namespace's default route
			c.ResyncInterval = 100 * time.Millisecond
			c.GCGrace = 500 * time.Millisecond
		})
	}
	first := &countingKernel{}
	n := start(first)
	nodeRes, err := store.Get(t.Context(), mustKindInfo(api.KindNode), "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if bgp := nodeRes.(*api.Node).Spec.BGP; bgp == nil || bgp.IPv4Address != "192.0.2.1/24" {
		t.Errorf("node address %+v, want 192.0.2.1/24 detected from the default route", bgp)
	}

	a := attach(t, n, host, "ctr-a")
	b := attach(t, n, host, "ctr-b")
	// The first packet after READY gets through: no window without
	// connectivity.
	mustPing(t, a, b.ip)
	mustPing(t, b, a.ip)

	err = n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(a.att), nil)
	if apiStatus(err) != 409 {
		t.Errorf("second ADD of an attached container: %v, want 409", err)
	}
	var check localapi.CheckResponse
	if err := n.client.Do(t.Context(), localapi.PathCNICheck, localapi.CheckRequest{Attachment: a.att}, &check); err != nil || len(check.Problems) != 0 {
		t.Errorf("CHECK: %+v, %v", check, err)
	}

	// Restart with containers running: traffic continues, and the new
	// calyx-node writes nothing to the kernel.
	testnet.WaitFor(t, "a full resync by the first calyx-node", func() bool { return first.dumps.Load() >= 2 })
	before := kernelText(t, host)
	pingDone := make(chan error, 1)
	var pingOut string
	go func() {
		var err error
		pingOut, err = ping(a, b.ip, "-c", "30", "-i", "0.05")
		pingDone <- err
	}()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	second := &countingKernel{}
	n = start(second)
	testnet.WaitFor(t, "two full resyncs by the restarted calyx-node", func() bool { return second.dumps.Load() >= 3 })
	if err := <-pingDone; err != nil || !strings.Contains(pingOut, " 0% packet loss") {
		t.Errorf("ping across the restart: %v\n%s", err, pingOut)
	}
	mustPing(t, b, a.ip)
	if w := second.writes.Load(); w != 0 {
		t.Errorf("the restarted calyx-node made %d kernel writes, want 0", w)
	}
	if d := cmp.Diff(before, kernelText(t, host)); d != "" {
		t.Errorf("kernel state changed across the restart (-before +after):\n%s", d)
	}

	// CNI GC releases the attachments of the network missing from the
	// valid list, host side included; DEL of what never was is fine.
	c := attach(t, n, host, "ctr-c")
	var gc localapi.GCResponse
	if err := n.client.Do(t.Context(), localapi.PathCNIGC, localapi.GCRequest{Network: "net1", Valid: []localapi.Attachment{a.att, b.att}}, &gc); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]localapi.Attachment{c.att}, gc.Released); d != "" {
		t.Errorf("GC released (-want +got):\n%s", d)
	}
	if text := kernelText(t, host); strings.Contains(text, c.add.HostIfName) {
		t.Errorf("the collected container's veth is left:\n%s", text)
	}
	if err := n.client.Do(t.Context(), localapi.PathCNIDel, localapi.DelRequest{Attachment: attachment("never-added", "eth0")}, nil); err != nil {
		t.Errorf("DEL without ADD: %v", err)
	}
	mustPing(t, a, b.ip)

	// DEL leaves nothing of the container, and may be repeated.
	for range 2 {
		if err := n.client.Do(t.Context(), localapi.PathCNIDel, localapi.DelRequest{Attachment: b.att}, nil); err != nil {
			t.Fatal(err)
		}
	}
	text := kernelText(t, host)
	for _, s := range []string{b.add.HostIfName, b.ip + " "} {
		if strings.Contains(text, s) {
			t.Errorf("%q left in the kernel after DEL:\n%s", s, text)
		}
	}
	if getEndpoint(t, store, b.add.Endpoint) != nil {
		t.Error("endpoint left after DEL")
	}
	alloc := ipam.New(store)
	if _, err := alloc.IPsByHandle(t.Context(), b.att.Handle()); !ipam.IsNotFound(err) {
		t.Errorf("handle after DEL: %v", err)
	}

	// The container's namespace disappears without a DEL (a reboot under
	// Mesos): after the grace period its endpoint and address are gone.
	_ = a.ns.Close() // an open handle keeps the mount busy
	if err := testutils.UnmountNS(a.ns); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the vanished container's address to be released", func() bool {
		_, err := alloc.IPsByHandle(t.Context(), a.att.Handle())
		return ipam.IsNotFound(err)
	})
	testnet.WaitFor(t, "the vanished container's endpoint to be deleted", func() bool {
		return getEndpoint(t, store, a.add.Endpoint) == nil
	})
}
