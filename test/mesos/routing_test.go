package mesos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// The routing tests' cluster: three hosts, h1 and h2 on LAN 0
// (192.0.2.0/24, 2001:db8:0::/64), h3 on LAN 1 (198.51.100.0/24,
// 2001:db8:1::/64), the LANs joined by a router namespace that knows no
// container routes. h2 has no default route, the others do. The pools are CrossSubnet: h1 and h2 route natively,
// h3 is reached over VXLAN.
const crossSubnetPools = `apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: routed-ipv4}
spec: {cidr: 10.68.0.0/16, blockSize: 26, vxlanMode: CrossSubnet}
---
apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: routed-ipv6}
spec: {cidr: fd68::/48, blockSize: 122, vxlanMode: CrossSubnet}
`

// lanHost is one host's place on the test LANs. A host without a
// default route reaches the other LAN through a route to its subnets
// only, as hosts on isolated networks do.
type lanHost struct {
	name      string
	lan       int
	ip4, ip6  netip.Prefix
	noDefault bool
}

var lanHosts = []lanHost{
	{name: "h1", lan: 0, ip4: netip.MustParsePrefix("192.0.2.11/24"), ip6: netip.MustParsePrefix("2001:db8::11/64")},
	{name: "h2", lan: 0, ip4: netip.MustParsePrefix("192.0.2.12/24"), ip6: netip.MustParsePrefix("2001:db8::12/64"), noDefault: true},
	{name: "h3", lan: 1, ip4: netip.MustParsePrefix("198.51.100.13/24"), ip6: netip.MustParsePrefix("2001:db8:1::13/64")},
}

// lanGateways are the router's addresses on each LAN.
var lanGateways = [][2]netip.Prefix{
	{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")},
	{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")},
}

// newRouter makes the router namespace: a bridge per LAN holding the
// gateway addresses, forwarding on.
func newRouter(t *testing.T) ns.NetNS {
	t.Helper()
	r := testnet.NewNS(t)
	err := r.Do(func(ns.NetNS) error {
		for i, gws := range lanGateways {
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("br%d", i)}}
			if err := netlink.LinkAdd(br); err != nil {
				return err
			}
			for _, gw := range gws {
				if err := netlink.AddrAdd(br, nlAddr(gw)); err != nil {
					return err
				}
			}
			if err := netlink.LinkSetUp(br); err != nil {
				return err
			}
		}
		for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile("/proc/sys/"+key, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("building the router: %v", err)
	}
	return r
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// plugHost gives a host namespace eth0 on its LAN, its addresses and
// default routes via the router.
func plugHost(t *testing.T, router, host ns.NetNS, h lanHost) {
	t.Helper()
	err := router.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: h.name}, PeerName: "eth0"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		br, err := netlink.LinkByName(fmt.Sprintf("br%d", h.lan))
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMaster(veth, br); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(veth); err != nil {
			return err
		}
		peer, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(peer, int(host.Fd()))
	})
	if err != nil {
		t.Fatalf("plugging %s into LAN %d: %v", h.name, h.lan, err)
	}
	err = host.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, p := range []netip.Prefix{h.ip4, h.ip6} {
			if err := netlink.AddrAdd(l, nlAddr(p)); err != nil {
				return err
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		for _, gw := range lanGateways[h.lan] {
			if !h.noDefault {
				if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.Addr().AsSlice()}); err != nil {
					return fmt.Errorf("default route via %s: %w", gw.Addr(), err)
				}
				continue
			}
			for lan, others := range lanGateways {
				for _, o := range others {
					if lan == h.lan || o.Addr().Is6() != gw.Addr().Is6() {
						continue
					}
					dst := nlAddr(o.Masked()).IPNet
					if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: gw.Addr().AsSlice()}); err != nil {
						return fmt.Errorf("route to %s via %s: %w", o.Masked(), gw.Addr(), err)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("configuring %s: %v", h.name, err)
	}
}

// newCluster starts the three hosts' calyx-nodes, h1 running the
// embedded etcd on its LAN address and the others joining it, with the
// CrossSubnet pools applied (and extra, if any) and a network "calyx"
// that assigns IPv4 and IPv6 addresses. It returns the hosts and the
// router's namespace.
func newCluster(t *testing.T, extra ...string) ([]*agent, ns.NetNS) {
	t.Helper()
	router := newRouter(t)
	var agents []*agent
	for _, h := range lanHosts {
		hostNS := testnet.NewNS(t)
		plugHost(t, router, hostNS, h)
		cfg := hostnode.Config{NS: hostNS, Name: h.name, IP: h.ip4.String(), NoUplink: true,
			Args: []string{"--ip6", h.ip6.String()}}
		if len(agents) == 0 {
			cfg.EtcdIP = h.ip4.Addr().String()
		} else {
			cfg.Join = agents[0].node
		}
		a := startAgent(t, cfg)
		if len(agents) == 0 {
			a.apply(t, crossSubnetPools)
			for _, y := range extra {
				a.apply(t, y)
			}
		}
		a.addNetwork(t, "calyx", map[string]any{"assign_ipv6": "true"})
		agents = append(agents, a)
	}
	return agents, router
}

// ip6 returns a task's IPv6 address.
func (tk *task) ip6(t *testing.T) string {
	t.Helper()
	if tk.v6 == "" {
		t.Fatalf("%s has no IPv6 address", tk.name)
	}
	return tk.v6
}

// routeGet runs `ip route get` for dst inside a host's namespace.
func routeGet(t *testing.T, a *agent, dst string) string {
	t.Helper()
	cmd := exec.Command("ip", "route", "get", dst)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := hostnode.RunIn(a.node.NS(), cmd); err != nil {
		t.Fatalf("ip route get %s: %v: %s", dst, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// TestRoutingCrossSubnet: every pair of containers on the three hosts
// reaches the other over IPv4 and IPv6 (ping and TCP); inside LAN 0 the
// path is native, across the router it is VXLAN; a full-size
// unfragmented ping fits the VXLAN path because the container MTU was
// derived from it.
func TestRoutingCrossSubnet(t *testing.T) {
	agents, _ := newCluster(t)
	var tasks []*task
	for i, a := range agents {
		name := fmt.Sprintf("c%d", i+1)
		tk := a.launch(t, name, []string{"app=routed", "name=" + name})
		testnet.Serve(t, tk.ns, "tcp", ":8080", tk.name)
		tasks = append(tasks, tk)
	}
	// Every endpoint is a member of the network's profile, which admits
	// its own members: policy lets every pair meet.
	for _, from := range tasks {
		for _, to := range tasks {
			if from == to {
				continue
			}
			for _, dst := range []string{to.ip, to.ip6(t)} {
				eventually(t, fmt.Sprintf("%s pings %s at %s", from.name, to.name, dst), func() bool { return pings(t, from, dst) })
				if _, err := testnet.Connect(from.ns, net.JoinHostPort(dst, "8080")); err != nil {
					t.Errorf("%s -> %s at %s: TCP: %v", from.name, to.name, dst, err)
				}
			}
		}
	}

	native := regexp.MustCompile(`via 192\.0\.2\.12 dev eth0`)
	if got := routeGet(t, agents[0], tasks[1].ip); !native.MatchString(got) {
		t.Errorf("h1 -> h2 should be native, got %q", got)
	}
	for _, c := range []struct {
		from *agent
		to   *task
		dev  string
	}{
		{agents[0], tasks[2], "vxlan.calyx"}, {agents[2], tasks[0], "vxlan.calyx"}, {agents[2], tasks[1], "vxlan.calyx"},
	} {
		if got := routeGet(t, c.from, c.to.ip); !strings.Contains(got, "dev "+c.dev) {
			t.Errorf("%s -> %s should cross %s, got %q", c.from.node.Name(), c.to.name, c.dev, got)
		}
	}
	if got := routeGet(t, agents[0], tasks[2].ip6(t)); !strings.Contains(got, "dev vxlan-v6.calyx") {
		t.Errorf("h1 -> h3 over IPv6 should cross vxlan-v6.calyx, got %q", got)
	}
	if got := routeGet(t, agents[0], tasks[1].ip6(t)); !strings.Contains(got, "via 2001:db8::12 dev eth0") {
		t.Errorf("h1 -> h2 over IPv6 should be native, got %q", got)
	}

	// 1400-byte IPv4 packets (1372 bytes of ICMP payload) with DF set
	// cross the VXLAN path.
	if ok, err := testnet.Ping(t.Context(), tasks[0].ns, tasks[2].ip, "-M", "do", "-s", "1372"); err != nil || !ok {
		t.Errorf("a 1400-byte unfragmented ping from h1 to h3 did not cross: %v %v", ok, err)
	}

	// calyxctl node status reads the same picture from h1's calyx-node.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, _, err := agents[0].node.Ctl(ctx, "", "node", "status", "--socket", agents[0].node.Socket())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"calyx-node h1: ready", "datastore: in sync", "vxlan.calyx: address", "vxlan-v6.calyx: address",
		"h3 ", "198.51.100.13", " bgp ", " vxlan ", " local-block ", "Established", tasks[0].ip,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("calyxctl node status lacks %q:\n%s", want, out)
		}
	}

	// Cross-host policy: a selector names a container on another host.
	agents[0].apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: only-c1-to-c3}
spec:
  selector: name == "c3"
  ingress:
  - action: Allow
    source: {selector: name == "c1"}
`)
	c1, c2, c3 := tasks[0], tasks[1], tasks[2]
	eventually(t, "c2 (h2) refused by c3 (h3)", func() bool { return !reach(c2, c3, 8080) })
	always(t, "c1 (h1) admitted by c3 (h3)", func() bool { return reach(c1, c3, 8080) })
}

// TestRoutingSurvivesAgentKill: a ping runs from a container on h1 to one
// on another host while that host's calyx-node is killed with SIGKILL and
// started again; not one reply is lost, and the routes are the same
// afterwards. Over VXLAN (h3) the routes come from the datastore; to h2
// they were learned over BGP, and graceful restart keeps them on both
// sides: h1 keeps h2's block while h2's speaker is gone, and h2 keeps
// h1's learned block until its sessions are back.
func TestRoutingSurvivesAgentKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		host int
	}{{"vxlan path, h3 restarts", 2}, {"bgp path, h2 restarts", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			agents, _ := newCluster(t)
			victim := agents[tc.host]
			c1 := agents[0].launch(t, "c1", nil)
			far := victim.launch(t, "far", nil)
			eventually(t, "c1 pings the far container", func() bool { return pings(t, c1, far.ip) })
			before := routeGet(t, victim, c1.ip)
			beforeH1 := routeGet(t, agents[0], far.ip)

			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ping", "-n", "-q", "-i", "0.05", "-c", "120", "-W", "1", far.ip)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := c1.ns.Do(func(ns.NetNS) error { return cmd.Start() }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			victim.node.Kill()
			n, err := victim.node.Restart(ctx)
			if err != nil {
				t.Fatal(err)
			}
			victim.node = n
			err = cmd.Wait()
			summary := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
			if err != nil || summary == nil || summary[1] != summary[2] {
				t.Errorf("replies lost while %s's calyx-node restarted: %v\n%s", victim.node.Name(), err, out.String())
			}
			if after := routeGet(t, victim, c1.ip); after != before {
				t.Errorf("%s's route to c1 changed across the restart: %q, then %q", victim.node.Name(), before, after)
			}
			if after := routeGet(t, agents[0], far.ip); after != beforeH1 {
				t.Errorf("h1's route to %s changed across the restart: %q, then %q", victim.node.Name(), beforeH1, after)
			}
		})
	}
}
