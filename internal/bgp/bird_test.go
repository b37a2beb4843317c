package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calyx-net/calyx/internal/testnet"
)

// inNetnsEnv marks the re-run of TestBIRD inside its own network
// namespace.
const inNetnsEnv = "CALYX_BGP_TEST_IN_NETNS"

// birdConf is BIRD as an eBGP ToR (AS 65000) with one session per
// family to the node, exporting a static route of each family.
const birdConf = `
router id 192.0.2.2;
protocol device {}
protocol static static4 { ipv4; route 203.0.113.0/24 blackhole; }
protocol static static6 { ipv6; route 2001:db8:ffff::/48 blackhole; }
protocol bgp calyx4 {
	local 192.0.2.2 as 65000;
	neighbor 192.0.2.1 as 64512;
	graceful restart on;
	ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp calyx6 {
	local 2001:db8::2 as 65000;
	neighbor 2001:db8::1 as 64512;
	graceful restart on;
	ipv6 { import all; export where source = RTS_STATIC; };
}
`

// TestBIRD peers the speaker with a real BIRD 2 over a veth pair. The
// speaker's sockets live in its process's namespace, so the test re-runs
// itself in a fresh network namespace (the root namespace is never
// touched) and starts BIRD in a second one.
func TestBIRD(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird is not on PATH: install Debian's bird2 (hack/install-deps.sh) to run the BIRD interop test")
	}
	testnet.RequireRoot(t)
	if os.Getenv(inNetnsEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBIRD$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		out, err := cmd.CombinedOutput()
		t.Logf("in its own network namespace:\n%s", out)
		if err != nil {
			t.Fatalf("TestBIRD in its own network namespace: %v", err)
		}
		return
	}

	birdNS := testnet.NewNS(t)
	linkVeth(t, birdNS)
	dir := t.TempDir()
	sock := filepath.Join(dir, "bird.ctl")
	startBIRD(t, birdNS, dir, sock)

	s, err := New(Config{
		RouterID:    netip.MustParseAddr("192.0.2.1"),
		ASN:         64512,
		ListenAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
	}, testnet.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.SetPeers(ctx, []Peer{
		{Name: "global:bird4", Addr: netip.MustParseAddr("192.0.2.2"), ASN: 65000},
		{Name: "global:bird6", Addr: netip.MustParseAddr("2001:db8::2"), ASN: 65000},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPaths(ctx, []Path{
		{Prefix: pfx("10.65.1.0/26"), NextHop: netip.MustParseAddr("192.0.2.1")},
		{Prefix: pfx("fd65::40/122"), NextHop: netip.MustParseAddr("2001:db8::1")},
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	n := &node{name: "calyx", s: s}
	waitState(t, n, "global:bird4", "Established")
	waitState(t, n, "global:bird6", "Established")

	// The speaker learns BIRD's static routes, with BIRD's session
	// address as next hop (eBGP next-hop-self).
	waitRoutes(t, n, "203.0.113.0/24 via 192.0.2.2 from global:bird4", "2001:db8:ffff::/48 via 2001:db8::2 from global:bird6")

	// BIRD learns the node's blocks with the node's next hops.
	for _, want := range []string{"10.65.1.0/26 via 192.0.2.1", "fd65::40/122 via 2001:db8::1"} {
		prefix, via, _ := strings.Cut(want, " ")
		testnet.WaitFor(t, "BIRD to learn "+want, func() bool {
			out, err := exec.Command("birdc", "-s", sock, "show", "route", "for", prefix, "all").CombinedOutput()
			return err == nil && strings.Contains(string(out), prefix) && strings.Contains(string(out), via)
		})
	}

	// A withdrawal reaches BIRD.
	if err := s.SetPaths(ctx, nil); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "BIRD to drop 10.65.1.0/26", func() bool {
		out, err := exec.Command("birdc", "-s", sock, "show", "route", "protocol", "calyx4").CombinedOutput()
		return err == nil && !strings.Contains(string(out), "10.65.1.0/26")
	})
	out, _ := exec.Command("birdc", "-s", sock, "show", "protocols").CombinedOutput()
	t.Logf("birdc show protocols:\n%s", out)
}

// linkVeth joins this namespace (calyx0: 192.0.2.1, 2001:db8::1) to
// birdNS (bird0: 192.0.2.2, 2001:db8::2) with a veth pair.
func linkVeth(t *testing.T, birdNS ns.NetNS) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "calyx0"},
		PeerName:      "bird0",
		PeerNamespace: netlink.NsFd(int(birdNS.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("adding veth: %v", err)
	}
	if err := addrUp("calyx0", "192.0.2.1/24", "2001:db8::1/64"); err != nil {
		t.Fatal(err)
	}
	if err := birdNS.Do(func(ns.NetNS) error { return addrUp("bird0", "192.0.2.2/24", "2001:db8::2/64") }); err != nil {
		t.Fatal(err)
	}
}

// addrUp gives link its addresses (IPv6 without duplicate address
// detection, so they are usable at once) and sets it up.
func addrUp(name string, cidrs ...string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	for _, c := range cidrs {
		ip, ipnet, err := net.ParseCIDR(c)
		if err != nil {
			return err
		}
		ipnet.IP = ip
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet, Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("adding %s to %s: %w", c, name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// startBIRD runs bird in the foreground in birdNS and kills it when the
// test ends.
func startBIRD(t *testing.T, birdNS ns.NetNS, dir, sock string) {
	t.Helper()
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(birdConf), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &testnet.SyncBuffer{}
	cmd := exec.Command("nsenter", "--net="+birdNS.Path(), "bird",
		"-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"), "-f")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if s := log.String(); s != "" {
			t.Logf("bird output:\n%s", s)
		}
	})
	testnet.WaitFor(t, "bird's control socket", func() bool {
		return exec.Command("birdc", "-s", sock, "show", "status").Run() == nil
	})
}
