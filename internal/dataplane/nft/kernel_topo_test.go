package nft

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/testnet"
	cnins "github.com/containernetworking/plugins/pkg/ns"
)

// topo is a "host" namespace with three "containers" behind calyx* veths
// (10.65.0.1-3, /32 routes and proxy ARP on the host, as the route
// reconciler sets them up) and an "outside" peer on ext0
// (192.168.50.2; the host is 192.168.50.1) that has no route to the
// pool, so only masqueraded traffic gets answers. Every container, the
// host and the outside run TCP servers on ports 80, 8080 and 9050 that greet with
// their name and the peer address they see, then echo lines.
type topo struct {
	host    cnins.NetNS
	outside cnins.NetNS
	ctrs    []cnins.NetNS
	k       *Netlink
}

var ctrAddrs = []string{"10.65.0.1", "10.65.0.2", "10.65.0.3"}

func nsName(n cnins.NetNS) string { return filepath.Base(n.Path()) }

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func inNS(t *testing.T, n cnins.NetNS, script string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", nsName(n), "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("in %s: %s: %v\n%s", nsName(n), script, err, out)
	}
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	testnet.RequireRoot(t)
	tp := &topo{host: testnet.NewNS(t), outside: testnet.NewNS(t)}
	h := nsName(tp.host)
	inNS(t, tp.host, "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for i, addr := range ctrAddrs {
		c := testnet.NewNS(t)
		tp.ctrs = append(tp.ctrs, c)
		tp.addVeth(t, c, fmt.Sprintf("calyx%010x", i+1), addr)
	}
	ipCmd(t, "-n", h, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", nsName(tp.outside))
	ipCmd(t, "-n", h, "addr", "add", "192.168.50.1/24", "dev", "ext0")
	ipCmd(t, "-n", h, "link", "set", "ext0", "up")
	ipCmd(t, "-n", nsName(tp.outside), "addr", "add", "192.168.50.2/24", "dev", "eth0")
	ipCmd(t, "-n", nsName(tp.outside), "link", "set", "eth0", "up")
	for i, c := range tp.ctrs {
		serve(t, c, fmt.Sprintf("ctr%d", i+1))
	}
	serve(t, tp.outside, "outside")
	serve(t, tp.host, "host")
	hn, err := netns.Open(tp.host.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hn.Close() })
	tp.k, err = NewNetlink(hn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.k.Close() })
	return tp
}

// addVeth links container c to the host through host-side ifName.
func (tp *topo) addVeth(t *testing.T, c cnins.NetNS, ifName, addr string) {
	t.Helper()
	h := nsName(tp.host)
	ipCmd(t, "-n", h, "link", "add", ifName, "type", "veth", "peer", "name", "eth0", "netns", nsName(c))
	ipCmd(t, "-n", h, "link", "set", ifName, "up")
	inNS(t, tp.host, fmt.Sprintf("echo 1 > /proc/sys/net/ipv4/conf/%s/proxy_arp && echo 0 > /proc/sys/net/ipv4/neigh/%s/proxy_delay", ifName, ifName))
	ipCmd(t, "-n", h, "route", "add", addr+"/32", "dev", ifName)
	ipCmd(t, "-n", nsName(c), "addr", "add", addr+"/32", "dev", "eth0")
	ipCmd(t, "-n", nsName(c), "link", "set", "eth0", "up")
	ipCmd(t, "-n", nsName(c), "route", "add", "default", "dev", "eth0")
}

// serve runs greeting echo servers in n until the test ends.
func serve(t *testing.T, n cnins.NetNS, name string) {
	t.Helper()
	var wg sync.WaitGroup
	// Cleanups run last-registered first: wait for the servers after
	// closing their listeners and connections.
	t.Cleanup(wg.Wait)
	for _, port := range []int{80, 8080, 9050} {
		var ln net.Listener
		if err := n.Do(func(cnins.NetNS) error {
			var err error
			ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP)
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						fmt.Fprintf(c, "%s\n", sc.Text())
					}
				}()
			}
		}()
		t.Cleanup(func() {
			_ = ln.Close()
			mu.Lock()
			for _, c := range conns {
				_ = c.Close()
			}
			mu.Unlock()
		})
	}
}

// dialTimeout bounds a connection attempt: a dropped SYN is retried by
// the kernel after a second, so an allowed connection opens well within
// it and a denied one never does.
const dialTimeout = 1500 * time.Millisecond

// conn opens a TCP connection from namespace n and reads the greeting.
func conn(n cnins.NetNS, addr string) (net.Conn, string, error) {
	var c net.Conn
	err := n.Do(func(cnins.NetNS) error {
		var err error
		c, err = (&net.Dialer{Timeout: dialTimeout}).Dial("tcp", addr)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(dialTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		_ = c.Close()
		return nil, "", err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, strings.TrimSpace(line), nil
}

// reach reports whether a TCP connection from n to addr opens.
func reach(n cnins.NetNS, addr string) bool {
	c, _, err := conn(n, addr)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func pingOK(n cnins.NetNS, addr string) bool {
	return exec.Command("ip", "netns", "exec", nsName(n), "ping", "-n", "-c", "1", "-W", "1", addr).Run() == nil
}

// expect checks a list of connectivity expectations: "c1->c2:80" means
// container 1 to container 2's port 80; "c1->c2:icmp" a ping.
func (tp *topo) expect(t *testing.T, want map[string]bool) {
	t.Helper()
	for spec, ok := range want {
		from, to, _ := strings.Cut(spec, "->")
		dst, port, _ := strings.Cut(to, ":")
		src := tp.node(from)
		addr := tp.addr(dst)
		var got bool
		if port == "icmp" {
			got = pingOK(src, addr)
		} else {
			got = reach(src, net.JoinHostPort(addr, port))
		}
		if got != ok {
			t.Errorf("%s: reachable = %v, want %v", spec, got, ok)
		}
	}
}

func (tp *topo) node(name string) cnins.NetNS {
	switch name {
	case "out":
		return tp.outside
	case "host":
		return tp.host
	}
	return tp.ctrs[int(name[1]-'1')]
}

func (tp *topo) addr(name string) string {
	switch name {
	case "out":
		return "192.168.50.2"
	case "host":
		return "192.168.50.1"
	}
	return ctrAddrs[int(name[1]-'1')]
}

func (tp *topo) nft(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", nsName(tp.host), "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// policyState is the three containers with the given ingress and egress
// tiers (by container index), the chains and two sets: "c1" and "c2"
// hold container 1's and 2's address.
func policyState(chains []*calc.Chain, ingress, egress map[int]calc.Tier) *calc.State {
	s := &calc.State{Endpoints: map[string]*calc.Endpoint{}, HostEndpoints: map[string]*calc.HostEndpoint{}, Chains: map[string]*calc.Chain{}, Sets: map[string]*calc.Set{},
		Config: &calc.Config{EndpointToHostAction: "Accept", MasqPools: pfx("10.65.0.0/16"), AllPools: pfx("10.65.0.0/16")}}
	for _, c := range chains {
		s.Chains[c.ID] = c
	}
	for i, a := range ctrAddrs {
		name := fmt.Sprintf("c%d", i+1)
		s.Sets[name] = &calc.Set{ID: name, Kind: calc.AddrSet, Describe: "container " + name, Prefixes: pfx(a + "/32")}
		s.Endpoints[name] = &calc.Endpoint{Name: name, IfName: fmt.Sprintf("calyx%010x", i+1), Addrs: []netip.Addr{netip.MustParseAddr(a)},
			Ingress: ingress[i+1], Egress: egress[i+1]}
	}
	return s
}

// allowAll is the profile "all" in direction dir: it allows everything.
func allowAll(dir string) *calc.Chain {
	return &calc.Chain{ID: chainID(calc.KindProfile, "all", dir), Kind: calc.KindProfile, Name: "all", Dir: dir, Rules: []calc.Rule{{Action: calc.ActionAllow}}}
}

func pol(name, dir string, rules ...calc.Rule) *calc.Chain {
	for i := range rules {
		rules[i].Index = i
	}
	return &calc.Chain{ID: chainID(calc.KindPolicy, name, dir), Kind: calc.KindPolicy, Name: name, Dir: dir, Rules: rules}
}

// everyone gets the allow-all profile in both directions.
func profiles(in, out map[int]calc.Tier) (map[int]calc.Tier, map[int]calc.Tier) {
	for i := 1; i <= 3; i++ {
		ti, to := in[i], out[i]
		ti.Profiles = []string{chainID(calc.KindProfile, "all", calc.Ingress)}
		to.Profiles = []string{chainID(calc.KindProfile, "all", calc.Egress)}
		in[i], out[i] = ti, to
	}
	return in, out
}

func (tp *topo) program(t *testing.T, r *Reconciler, s *calc.State) {
	t.Helper()
	if err := r.Resync(context.Background(), s); err != nil {
		t.Fatalf("programming: %v", err)
	}
}

// newExtraContainer adds a fourth container behind calyx0000000004
// (10.65.0.4) that no State knows.
func newExtraContainer(t *testing.T, tp *topo) cnins.NetNS {
	t.Helper()
	c := testnet.NewNS(t)
	tp.addVeth(t, c, "calyx0000000004", "10.65.0.4")
	serve(t, c, "ctr4")
	return c
}
