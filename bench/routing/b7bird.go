package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// BIRD's side of B7: the same two hosts joined by the same underlay, a
// BIRD 2 on each (the sender b1 and the receiver b2) in one iBGP session
// (AS 64512, as Calyx's mesh), b2 exporting what it learns to its kernel.
// The sender originates routes in the two ways that match Calyx's:
//
//   - a new route (new_block): a blackhole /32 added to b1's kernel; BIRD's
//     kernel protocol learns it from the netlink event (BIRD on Linux
//     learns alien routes asynchronously, not only by its periodic scan),
//     as Calico's BIRD learns its blocks' blackholes from Felix;
//   - a route handed to the speaker (route_add/withdraw, 10k): a static
//     protocol, configured but disabled, enabled and disabled through
//     BIRD's control socket, spoken to in process (no birdc exec), as the
//     bench speaker is handed its paths.

// birdSenderConf is b1's configuration: it learns the kernel's routes in
// newRoutePool and originates the single and bulk static routes when
// their protocols are enabled; next hop self, as Calyx's nodes advertise
// their own address.
func birdSenderConf(self, peer netip.Addr, bulk int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device {}\n", self)
	fmt.Fprintf(&b, "protocol kernel learned {\n\tlearn;\n\tipv4 { import where net ~ [ %s+ ]; export none; };\n}\n", newRoutePool)
	fmt.Fprintf(&b, "protocol static %s {\n\tdisabled;\n\tipv4;\n\troute %s blackhole;\n}\n", birdSingle, singlePrefix)
	fmt.Fprintf(&b, "protocol static %s {\n\tdisabled;\n\tipv4;\n", birdBulk)
	for i := range bulk {
		fmt.Fprintf(&b, "\troute %s blackhole;\n", bulkPrefix(i))
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "protocol bgp peer {\n\tlocal %s as %d;\n\tneighbor %s as %d;\n\tdirect;\n"+
		"\tipv4 { import none; export all; next hop self; };\n}\n", self, bgpASN, peer, bgpASN)
	return b.String()
}

// birdReceiverConf is b2's: it installs every route it learns in the
// kernel.
func birdReceiverConf(self, peer netip.Addr) string {
	return fmt.Sprintf(`router id %s;
protocol device {}
protocol kernel {
	ipv4 { import none; export all; };
}
protocol bgp peer {
	local %s as %d;
	neighbor %s as %d;
	direct;
	ipv4 { import all; export none; };
}
`, self, self, bgpASN, peer, bgpASN)
}

// The static protocols of birdSenderConf.
const (
	birdSingle = "single"
	birdBulk   = "bulk"
)

// birdProc is one running bird.
type birdProc struct {
	cmd  *exec.Cmd
	sock string
	log  *testnet.SyncBuffer
}

// startBIRD runs bird in the foreground in host with conf, in dir, and
// waits for its control socket.
func startBIRD(ctx context.Context, host *netNS, dir, conf string) (*birdProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	b := &birdProc{sock: filepath.Join(dir, "bird.ctl"), log: &testnet.SyncBuffer{}}
	b.cmd = exec.Command("bird", "-f", "-c", file, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := hostnode.StartIn(host.ns, b.cmd); err != nil {
		return nil, fmt.Errorf("starting bird in %s: %w", host.name, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := dialBIRD(ctx, b.sock)
		if err == nil {
			c.close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("bird in %s: no control socket: %w: %s", host.name, err, firstLines(b.log.String(), 5))
		}
		select {
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *birdProc) stop() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// birdCtl is a connection to BIRD's control socket, the protocol birdc
// speaks: a greeting, then one command a line, each answered by lines
// "CODE-text" (more follow), " text" (continued) and "CODE text" (the
// last); codes 8xxx and 9xxx are errors.
type birdCtl struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialBIRD(ctx context.Context, sock string) (*birdCtl, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	c := &birdCtl{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.answer(); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("reading bird's greeting: %w", err)
	}
	return c, nil
}

// do sends one command and returns its answer's text.
func (c *birdCtl) do(cmd string) (string, error) {
	if _, err := fmt.Fprintf(c.conn, "%s\n", cmd); err != nil {
		return "", fmt.Errorf("bird %q: %w", cmd, err)
	}
	out, err := c.answer()
	if err != nil {
		return out, fmt.Errorf("bird %q: %w", cmd, err)
	}
	return out, nil
}

func (c *birdCtl) answer() (string, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return "", err
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		lines = append(lines, strings.TrimRight(l, "\n"))
		last, failed := birdReplyEnd(lines[len(lines)-1])
		if failed {
			return strings.Join(lines, "\n"), fmt.Errorf("bird: %s", lines[len(lines)-1])
		}
		if last {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// birdReplyEnd says whether a control-socket line ends an answer ("CODE
// text", four digits and a space) and whether that answer is an error
// (code 8xxx or 9xxx). Pure.
func birdReplyEnd(line string) (last, failed bool) {
	if len(line) < 5 || line[4] != ' ' {
		return false, false
	}
	for _, r := range line[:4] {
		if r < '0' || r > '9' {
			return false, false
		}
	}
	return true, line[0] == '8' || line[0] == '9'
}

func (c *birdCtl) close() { _ = c.conn.Close() }

// birdSide is BIRD's pair of hosts, ready to measure.
type birdSide struct {
	topo    *topology
	sender  *birdProc
	ctl     *birdCtl        // to the sender
	kernel  *netlink.Handle // in the sender's namespace
	watch   *routeWatch     // the receiver's routes
	version string
	recv    *birdProc
	h2      *netNS
	next    int // the next new route's index
}

// newBIRDSide builds BIRD's hosts (namespaces b7bird-h1 and -h2, the
// same underlay as Calyx's) and starts both birds.
func newBIRDSide(ctx context.Context, work string) (_ *birdSide, err error) {
	s := &birdSide{topo: &topology{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	hs, err := s.topo.hosts(ctx, "b7bird")
	if err != nil {
		return nil, err
	}
	if s.watch, err = watchRoutes(hs[1], watchedRange, bulkRange); err != nil {
		return nil, err
	}
	a1, a2 := underlay[0].Addr(), underlay[1].Addr()
	s.h2 = hs[1]
	recv, err := startBIRD(ctx, hs[1], filepath.Join(work, "bird-h2"), birdReceiverConf(a2, a1))
	if err != nil {
		return nil, err
	}
	s.recv = recv
	s.topo.stop = append(s.topo.stop, recv.stop)
	if s.sender, err = startBIRD(ctx, hs[0], filepath.Join(work, "bird-h1"), birdSenderConf(a1, a2, bulkRoutes)); err != nil {
		return nil, err
	}
	s.topo.stop = append(s.topo.stop, s.sender.stop)
	if s.ctl, err = dialBIRD(ctx, s.sender.sock); err != nil {
		return nil, err
	}
	if out, err := s.ctl.do("show status"); err == nil {
		s.version = birdVersion(out)
	}
	err = hs[0].ns.Do(func(ns.NetNS) error {
		var err error
		s.kernel, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening netlink in %s: %w", hs[0].name, err)
	}
	return s, nil
}

// birdVersion picks "BIRD 2.0.12" out of `show status`.
func birdVersion(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if i := strings.Index(l, "BIRD "); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "bird (version unknown)"
}

func (s *birdSide) close() {
	if s.kernel != nil {
		s.kernel.Close()
	}
	if s.ctl != nil {
		s.ctl.close()
	}
	if s.watch != nil {
		s.watch.close()
	}
	s.topo.close()
}

func (s *birdSide) name() string { return "bird" }

func (s *birdSide) tracker() *tracker { return s.watch.tracker }

// newRoute adds a new blackhole /32 to the sender's kernel.
func (s *birdSide) newRoute(_ context.Context) (netip.Prefix, error) {
	p := netip.PrefixFrom(nthAddr(newRoutePool.Addr(), s.next), 32)
	s.next++
	r := &netlink.Route{Dst: prefixIPNet(p), Type: unix.RTN_BLACKHOLE, Protocol: unix.RTPROT_STATIC, Table: unix.RT_TABLE_MAIN}
	if err := s.kernel.RouteAdd(r); err != nil {
		return p, fmt.Errorf("adding %s to bird's sender's kernel: %w", p, err)
	}
	return p, nil
}

func (s *birdSide) single(_ context.Context, on bool) error {
	_, err := s.ctl.do(map[bool]string{true: "enable ", false: "disable "}[on] + birdSingle)
	return err
}

// bulk enables (n = bulkRoutes) or disables (n = 0) the bulk protocol.
func (s *birdSide) bulk(_ context.Context, n int) error {
	if n != 0 && n != bulkRoutes {
		return fmt.Errorf("bird's bulk protocol holds %d routes, not %d", bulkRoutes, n)
	}
	_, err := s.ctl.do(map[bool]string{true: "enable ", false: "disable "}[n > 0] + birdBulk)
	return err
}

func (s *birdSide) diag(ctx context.Context) string {
	routes, err := s.h2.output(ctx, "ip", "route", "show", "proto", "bird")
	if err != nil {
		routes = err.Error()
	}
	protos, _ := s.ctl.do("show protocols")
	return fmt.Sprintf("b2's bird routes (%d tracked in the bulk range):\n%s\nb1's protocols:\n%s\nb1's bird:\n%s\nb2's bird:\n%s",
		s.watch.size(), firstLines(routes, 20), protos, lastLines(s.sender.log.String(), 10), lastLines(s.recv.log.String(), 10))
}
