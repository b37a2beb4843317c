// Package hostnode runs a real calyx-node in a network namespace standing
// for a host, for the CNI tests, the Mesos isolator stand-in and the CNI
// benchmark.
//
// Why a process and not agent.Run in the test binary: the CNI plugins are
// separate binaries that find calyx-node by its socket, and a runtime runs
// them in the host's namespace. The tests must meet calyx-node the way a
// plugin on a real host does, built from cmd/calyx-node, with its embedded
// etcd on the namespace's own loopback, so that nothing leaks into the
// machine's root namespace and hosts never collide on ports.
//
// Processes start inside a namespace by being forked from an OS thread
// that is in it: StartIn calls exec.Cmd.Start inside ns.NetNS.Do, and a
// forked child inherits its parent thread's network namespace.
package hostnode

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/pki"
	"github.com/calyx-net/calyx/internal/testnet"
)

// Build builds calyx, calyx-ipam, calyx-node and calyxctl into dir, from
// the module holding the current directory.
func Build(ctx context.Context, dir string) error {
	binaries := []string{"calyx", "calyx-ipam", "calyx-node", "calyxctl"}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("finding the module: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"build", "-o", dir + "/"}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build: static
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", strings.Join(binaries, ", "), err, out)
	}
	return nil
}

// Binaries returns the directory of the binaries a benchmark runs: dir
// made absolute when set (binaries built elsewhere, e.g. with profiling),
// else work/bin, where it builds them (Build), saying so on log.
func Binaries(ctx context.Context, dir, work string, log func(format string, args ...any)) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	dir = filepath.Join(work, "bin")
	log("building the binaries")
	return dir, Build(ctx, dir)
}

// BuildTemp builds the binaries (see Build) into a new temporary
// directory named after prefix, for a test package's TestMain. The caller
// runs cleanup when its tests are done.
func BuildTemp(prefix string) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("making a directory for the binaries: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := Build(ctx, dir); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// RunTests is a test package's TestMain body: as root it builds the
// binaries once (BuildTemp) and sets *dir to their directory, runs the
// tests and removes the binaries; not as root it leaves *dir "" (the tests
// that need the binaries skip). Call it as
// os.Exit(hostnode.RunTests(m, "calyx-PKG-bin", &binDir)).
func RunTests(m *testing.M, prefix string, dir *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	d, cleanup, err := BuildTemp(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*dir = d
	return m.Run()
}

// StartIn starts cmd with its network namespace set to netns.
func StartIn(netns ns.NetNS, cmd *exec.Cmd) error {
	return netns.Do(func(ns.NetNS) error { return cmd.Start() })
}

// RunIn runs cmd in netns and waits for it.
func RunIn(netns ns.NetNS, cmd *exec.Cmd) error {
	if err := StartIn(netns, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Config says how to run one calyx-node.
type Config struct {
	// BinDir holds calyx-node and calyxctl (see Build).
	BinDir string
	// NS is the host's network namespace.
	NS ns.NetNS
	// Name is the node name; IP its --ip (default 192.0.2.10/24).
	Name, IP string
	// WorkDir holds the data directory and the socket. Keep it short: a
	// unix socket path has at most 107 bytes.
	WorkDir string
	// MetricsAddr is --metrics-addr; "" turns metrics off.
	MetricsAddr string
	// Args are extra calyx-node flags.
	Args []string
	// EtcdIP is the address the embedded etcd listens on (default
	// 127.0.0.1); other hosts' namespaces reach it there.
	EtcdIP string
	// Join, when set, runs no embedded etcd: calyx-node uses Join's,
	// with Join's client certificate, as a second host of a cluster.
	Join *Node
	// Etcd, when set, runs no embedded etcd either: calyx-node uses this
	// external etcd (its endpoints, CA and client certificate), as in
	// production (e.g. a testnet.EtcdCluster's ClientConfig).
	Etcd *datastore.Config
	// NoUplink says the caller has given NS its interfaces, addresses
	// and routes (a host on a test LAN); otherwise Start adds an uplink.
	NoUplink bool
	// DockerHost, when set, turns the Docker plugin on: calyx-node serves
	// it in its default plugin directory and reads dockerd at this
	// address. Otherwise it runs with --docker=false.
	DockerHost string
	// Command, when set, builds the calyx-node command instead of
	// exec.Command: for one that runs in dockerd's mount namespace too
	// (dockerd.Daemon.Command), where the plugin directory and the
	// containers' sandboxes are.
	Command func(name string, args ...string) *exec.Cmd
}

// Node is a running calyx-node.
type Node struct {
	cfg      Config
	socket   string
	endpoint string
	cmd      *exec.Cmd
	log      *testnet.SyncBuffer
	done     chan struct{}
	waitErr  error
	killed   atomic.Bool // by Kill: its exit status is not a failure
}

// Start runs calyx-node in cfg.NS and waits until its local API says it is
// ready.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.IP == "" {
		cfg.IP = "192.0.2.10/24"
	}
	etcdIP := cmp.Or(cfg.EtcdIP, "127.0.0.1")
	n := &Node{cfg: cfg, socket: filepath.Join(cfg.WorkDir, "calyx.sock"), endpoint: "https://" + net.JoinHostPort(etcdIP, "2379"),
		log: &testnet.SyncBuffer{}, done: make(chan struct{})}
	args := []string{"--name", cfg.Name, "--ip", cfg.IP, "--data-dir", filepath.Join(cfg.WorkDir, "data"),
		"--socket", n.socket, "--metrics-addr", cfg.MetricsAddr, "--log-level", "debug"}
	switch {
	case cfg.Etcd != nil:
		n.endpoint = cfg.Etcd.Endpoints[0]
		args = append(args, "--etcd-endpoints", strings.Join(cfg.Etcd.Endpoints, ","),
			"--etcd-ca-file", cfg.Etcd.CAFile, "--etcd-cert-file", cfg.Etcd.CertFile, "--etcd-key-file", cfg.Etcd.KeyFile)
	case cfg.Join != nil:
		n.endpoint = cfg.Join.endpoint
		f := cfg.Join.PKI()
		args = append(args, "--etcd-endpoints", n.endpoint, "--etcd-ca-file", f.CACert, "--etcd-cert-file", f.ClientCert, "--etcd-key-file", f.ClientKey)
	default:
		args = append(args, "--etcd-listen-client-url", n.endpoint, "--etcd-listen-peer-url", "https://"+net.JoinHostPort(etcdIP, "2380"))
	}
	if !cfg.NoUplink {
		if err := addUplink(cfg.NS, cfg.IP); err != nil {
			return nil, err
		}
	}
	if cfg.DockerHost != "" {
		args = append(args, "--docker-host", cfg.DockerHost)
	} else {
		args = append(args, "--docker=false")
	}
	command := exec.Command
	if cfg.Command != nil {
		command = cfg.Command
	}
	n.cmd = command(filepath.Join(cfg.BinDir, "calyx-node"), append(args, cfg.Args...)...)
	n.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	// The Go runtime's settings pass through, so that a benchmark can
	// measure them (e.g. GOGC=50 make bench BENCH=footprint).
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			n.cmd.Env = append(n.cmd.Env, k+"="+v)
		}
	}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := StartIn(cfg.NS, n.cmd); err != nil {
		return nil, fmt.Errorf("starting calyx-node: %w", err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.done)
	}()
	if err := n.waitReady(ctx, 90*time.Second); err != nil {
		n.Kill()
		return nil, err
	}
	return n, nil
}

func (n *Node) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := localapi.NewClient(n.socket)
	var last error
	for {
		var st localapi.StatusResponse
		err := client.Do(ctx, localapi.PathStatus, struct{}{}, &st)
		switch {
		case err == nil && st.Ready:
			return nil
		case err == nil:
			last = fmt.Errorf("not ready: %s", st.Message)
		default:
			last = err
		}
		select {
		case <-n.done:
			return fmt.Errorf("calyx-node exited (%w) before serving its local API; log:\n%s", n.waitErr, n.log)
		case <-ctx.Done():
			return fmt.Errorf("calyx-node did not get ready at %s: %w; log:\n%s", n.socket, last, n.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// addUplink gives the host namespace what every real host has: an
// interface carrying the host's address and a default route through it.
// The interface is one end of a veth pair whose other end stays in the same
// namespace, so nothing leaves it. Containers need the route: the host
// answers their ARP for 169.254.1.1 by proxy ARP, which the kernel does only
// when it has a route to that address through another interface.
func addUplink(netns ns.NetNS, ip string) error {
	prefix, err := netip.ParsePrefix(ip)
	if err != nil {
		return fmt.Errorf("host address %q: %w", ip, err)
	}
	gw := prefix.Masked().Addr().Next()
	return netns.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("uplink0"); err == nil {
			return nil
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink0-peer"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("creating the uplink: %w", err)
		}
		for _, name := range []string{"uplink0", "uplink0-peer"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("setting %s up: %w", name, err)
			}
		}
		l, err := netlink.LinkByName("uplink0")
		if err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)}}
		if err := netlink.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("adding %s to the uplink: %w", ip, err)
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("adding the default route via %s: %w", gw, err)
		}
		return nil
	})
}

// Socket is the local API's socket.
func (n *Node) Socket() string { return n.socket }

// Endpoint is the etcd's client URL (the embedded one's, or the first of
// Config.Etcd's), reachable inside NS.
func (n *Node) Endpoint() string { return n.endpoint }

// PKI is where calyx-node keeps its embedded etcd's CA and certificates
// (under its data directory); a client of Endpoint presents
// ClientCert/ClientKey and verifies with CACert. With Config.Etcd, only
// those three are set, to its files.
func (n *Node) PKI() pki.Files {
	if e := n.cfg.Etcd; e != nil {
		return pki.Files{CACert: e.CAFile, ClientCert: e.CertFile, ClientKey: e.KeyFile}
	}
	if n.cfg.Join != nil {
		return n.cfg.Join.PKI()
	}
	return pki.Paths(filepath.Join(n.cfg.WorkDir, "data", pki.DirName))
}

// EtcdEnv is the CALYX_ETCD_* environment that reaches the node's etcd.
func (n *Node) EtcdEnv() []string {
	f := n.PKI()
	return []string{"CALYX_ETCD_ENDPOINTS=" + n.endpoint, "CALYX_ETCD_CA_FILE=" + f.CACert,
		"CALYX_ETCD_CERT_FILE=" + f.ClientCert, "CALYX_ETCD_KEY_FILE=" + f.ClientKey}
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// NS is the host's namespace.
func (n *Node) NS() ns.NetNS { return n.cfg.NS }

// Log returns what calyx-node has logged so far.
func (n *Node) Log() string { return n.log.String() }

// Ctl runs calyxctl against the node's etcd, inside its namespace.
func (n *Node) Ctl(ctx context.Context, stdin string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.cfg.BinDir, "calyxctl"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, n.EtcdEnv()...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := RunIn(n.cfg.NS, cmd)
	if err != nil {
		err = fmt.Errorf("calyxctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

// Stop sends SIGTERM and waits for calyx-node to exit.
func (n *Node) Stop() error {
	select {
	case <-n.done:
		return n.exitErr()
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.exitErr()
	case <-time.After(30 * time.Second):
		n.Kill()
		return errors.New("calyx-node did not stop within 30s of SIGTERM")
	}
}

func (n *Node) exitErr() error {
	if n.waitErr != nil && !n.killed.Load() {
		return fmt.Errorf("calyx-node exited with %w; log:\n%s", n.waitErr, n.log)
	}
	return nil
}

// Kill stops calyx-node at once.
func (n *Node) Kill() {
	select {
	case <-n.done:
		return
	default:
	}
	n.killed.Store(true)
	_ = n.cmd.Process.Kill()
	<-n.done
}

// Restart starts a new calyx-node with the same settings (data directory,
// socket, namespace) once this one has stopped or been killed.
func (n *Node) Restart(ctx context.Context) (*Node, error) {
	select {
	case <-n.done:
	default:
		return nil, errors.New("restart: calyx-node is still running: Stop or Kill it first")
	}
	return Start(ctx, n.cfg)
}
