package testnet

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
)

// A real etcd cluster for outage tests: N members of the etcd binary from
// Debian's etcd-server package (hack/install-deps.sh installs it), each a
// child process on free loopback ports with its data in a temporary
// directory. The embedded etcd cannot lose a leader or a quorum; this can.
// The footprint benchmark (bench/footprint) runs a one-member cluster as
// production runs calyx-node: against an etcd of its own, in a network
// namespace (NewEtcdCluster with Start, Dial and Ports).

// EtcdClusterTLS names the certificate files of a TLS cluster. With
// ServerCertFile set, clients connect over https and must present a
// certificate signed by CAFile; with PeerCertFile set, members talk to
// each other over https, also with certificates signed by CAFile.
type EtcdClusterTLS struct {
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	PeerCertFile, PeerKeyFile     string
	// ClientCertFile and ClientKeyFile authenticate the test's clients
	// (ClientConfig and the helper's own status requests).
	ClientCertFile, ClientKeyFile string
}

// EtcdClusterOptions configure StartEtcdCluster and NewEtcdCluster; the
// zero value is a cluster of the etcd on $PATH on free loopback ports,
// serving TLS with client certificates from a fresh PKI.
type EtcdClusterOptions struct {
	// Bin is the etcd binary; default "etcd" looked up in $PATH. The test
	// is skipped when it is not installed.
	Bin string
	// TLS names the certificates; nil: a fresh PKI (see PKI) in the
	// cluster's directory.
	TLS *EtcdClusterTLS
	// Ports are the members' client and peer ports, two per member in
	// member order; default free loopback ports (FreePorts).
	Ports []int
	// Start starts a member's process; default cmd.Start. A caller that
	// runs the cluster in a network namespace starts it there (see
	// test/hostnode.StartIn), and then also sets Dial.
	Start func(cmd *exec.Cmd) error
	// Dial opens the helper's own connections to the members (health,
	// status); default a plain TCP dial.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HeartbeatMS and ElectionMS are the members' raft timing; default
	// 50 and 500, ten times faster than etcd's own defaults, so that a
	// lost leader is replaced, or found missing, quickly.
	HeartbeatMS, ElectionMS int
}

// EtcdCluster is a running etcd cluster of child processes. Its methods
// are safe for concurrent use.
type EtcdCluster struct {
	t       testing.TB // nil for NewEtcdCluster's clusters
	bin     string
	opts    EtcdClusterOptions
	tls     *EtcdClusterTLS
	http    *http.Client
	members []*EtcdMember
	initial string // --initial-cluster
}

// EtcdMember is one member of an EtcdCluster.
type EtcdMember struct {
	Name      string
	ClientURL string
	PeerURL   string
	dataDir   string
	logPath   string

	mu   sync.Mutex    // guards cmd and done
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed when cmd has exited
}

// Election timing: faster than etcd's defaults (100 ms, 1 s) so that a
// lost leader is replaced, or found missing, quickly.
const (
	clusterHeartbeatMS = 50
	clusterElectionMS  = 500
)

// StartEtcdCluster starts an n-member cluster for t, in t.TempDir(),
// waits until every member is healthy and stops it when t ends.
func StartEtcdCluster(t testing.TB, n int, opts EtcdClusterOptions) *EtcdCluster {
	t.Helper()
	bin := cmp.Or(opts.Bin, "etcd")
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("etcd binary %q not found (install Debian's etcd-server package, see hack/install-deps.sh): %v", bin, err)
	}
	if opts.Ports == nil {
		opts.Ports = FreePorts(t, 2*n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewEtcdCluster(ctx, t.TempDir(), n, opts)
	if err != nil {
		t.Fatalf("etcd cluster: %v", err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// NewEtcdCluster starts an n-member cluster with its data, logs and (with
// opts.TLS nil) PKI in dir, and waits until every member is healthy. The
// caller calls Close when done. Outside a test (a benchmark), it is how a
// program runs etcd as a process of its own.
func NewEtcdCluster(ctx context.Context, dir string, n int, opts EtcdClusterOptions) (_ *EtcdCluster, err error) {
	path, err := exec.LookPath(cmp.Or(opts.Bin, "etcd"))
	if err != nil {
		return nil, fmt.Errorf("etcd binary not found (install Debian's etcd-server package, see hack/install-deps.sh): %w", err)
	}
	if opts.Ports == nil {
		if opts.Ports, err = freePorts(2 * n); err != nil {
			return nil, err
		}
	}
	if len(opts.Ports) != 2*n {
		return nil, fmt.Errorf("%d ports for %d members, want %d", len(opts.Ports), n, 2*n)
	}
	opts.HeartbeatMS = cmp.Or(opts.HeartbeatMS, clusterHeartbeatMS)
	opts.ElectionMS = cmp.Or(opts.ElectionMS, clusterElectionMS)
	if opts.TLS == nil {
		// Like calyx-node's embedded etcd, the cluster serves only TLS
		// with client certificates, on the client and the peer port.
		// The client port serves the peer certificate: etcd 3.4's JSON
		// gateway, which Leader and Status use, dials the member's own
		// gRPC port with the serving certificate as its client
		// certificate, so that certificate must allow client
		// authentication too, as the peer certificate does.
		f, err := pki.Ensure(filepath.Join(dir, "etcd-pki"), pki.Options{})
		if err != nil {
			return nil, fmt.Errorf("creating the cluster's PKI: %w", err)
		}
		opts.TLS = &EtcdClusterTLS{
			CAFile:         f.CACert,
			ServerCertFile: f.PeerCert, ServerKeyFile: f.PeerKey,
			PeerCertFile: f.PeerCert, PeerKeyFile: f.PeerKey,
			ClientCertFile: f.ClientCert, ClientKeyFile: f.ClientKey,
		}
	}
	hc, err := statusHTTPClient(opts.TLS, opts.Dial)
	if err != nil {
		return nil, err
	}
	c := &EtcdCluster{bin: path, opts: opts, tls: opts.TLS, http: hc}
	clientScheme, peerScheme := "http", "http"
	if opts.TLS.ServerCertFile != "" {
		clientScheme = "https"
	}
	if opts.TLS.PeerCertFile != "" {
		peerScheme = "https"
	}
	var initial []string
	for i := range n {
		m := &EtcdMember{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", clientScheme, opts.Ports[2*i]),
			PeerURL:   fmt.Sprintf("%s://127.0.0.1:%d", peerScheme, opts.Ports[2*i+1]),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := range c.members {
		if err := c.start(i, "new"); err != nil {
			return nil, err
		}
	}
	for i := range c.members {
		if err := c.WaitHealthy(ctx, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// statusHTTPClient is the client of the helper's own requests (health and
// status through etcd's JSON gateway).
func statusHTTPClient(cfg *EtcdClusterTLS, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*http.Client, error) {
	tr := &http.Transport{DialContext: dial}
	if cfg != nil && cfg.ServerCertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading the CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate in it", cfg.CAFile)
			}
		}
		if cfg.ClientCertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
			if err != nil {
				return nil, fmt.Errorf("loading the client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Second}, nil
}

// args are member i's command-line flags.
func (c *EtcdCluster) args(i int, state string) []string {
	m := c.members[i]
	args := []string{
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", state,
		"--initial-cluster-token", "calyx-test",
		"--heartbeat-interval", fmt.Sprint(c.opts.HeartbeatMS),
		"--election-timeout", fmt.Sprint(c.opts.ElectionMS),
		"--max-txn-ops", fmt.Sprint(datastore.DefaultMaxTxnOps),
		"--max-request-bytes", fmt.Sprint(datastore.DefaultMaxRequestBytes),
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if t := c.tls; t != nil {
		if t.ServerCertFile != "" {
			args = append(args, "--cert-file", t.ServerCertFile, "--key-file", t.ServerKeyFile,
				"--client-cert-auth", "--trusted-ca-file", t.CAFile)
		}
		if t.PeerCertFile != "" {
			args = append(args, "--peer-cert-file", t.PeerCertFile, "--peer-key-file", t.PeerKeyFile,
				"--peer-client-cert-auth", "--peer-trusted-ca-file", t.CAFile)
		}
	}
	return args
}

// start runs member i's process; state is "new" on first start, else
// "existing".
func (c *EtcdCluster) start(i int, state string) error {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("starting etcd member %s: it is running", m.Name)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	cmd := exec.Command(c.bin, c.args(i, state)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a ^C to the test does not reach it
	// before the cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := c.opts.Start
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	m.cmd, m.done = cmd, done
	return nil
}

// Endpoints returns every member's client URL.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.ClientURL
	}
	return out
}

// PID is the member's process ID, or 0 while it is stopped.
func (m *EtcdMember) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// LogPath is the file the member logs to.
func (m *EtcdMember) LogPath() string { return m.logPath }

// Member returns member i.
func (c *EtcdCluster) Member(i int) *EtcdMember { return c.members[i] }

// Size is the number of members.
func (c *EtcdCluster) Size() int { return len(c.members) }

// ClientFlags are the calyxctl / calyx-node flags that reach every member.
func (c *EtcdCluster) ClientFlags() []string {
	cfg := c.ClientConfig()
	flags := []string{"--etcd-endpoints", strings.Join(cfg.Endpoints, ",")}
	if c.tls != nil {
		flags = append(flags, "--etcd-ca-file", cfg.CAFile, "--etcd-cert-file", cfg.CertFile, "--etcd-key-file", cfg.KeyFile)
	}
	return flags
}

// ClientConfig is a datastore configuration for every member.
func (c *EtcdCluster) ClientConfig() datastore.Config {
	cfg := datastore.Config{Endpoints: c.Endpoints()}
	if c.tls != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = c.tls.CAFile, c.tls.ClientCertFile, c.tls.ClientKeyFile
	}
	return cfg
}

// Stop stops member i gracefully (SIGTERM; SIGKILL after 10 s) and waits
// for it to exit. Stopping a stopped member does nothing.
func (c *EtcdCluster) Stop(i int) { c.halt(i, syscall.SIGTERM) }

// Kill kills member i (SIGKILL), as a crash or a power cut would, and
// waits for it to exit.
func (c *EtcdCluster) Kill(i int) { c.halt(i, syscall.SIGKILL) }

func (c *EtcdCluster) halt(i int, sig syscall.Signal) {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd, m.done = nil, nil
}

// Start starts a stopped or killed member i again with its data, without
// waiting: a member alone cannot become healthy.
func (c *EtcdCluster) Start(i int) error { return c.start(i, "existing") }

// Restart starts a stopped or killed member i again with its data and
// waits until it is healthy. It is for StartEtcdCluster's clusters: it
// fails the test.
func (c *EtcdCluster) Restart(i int) {
	if c.t == nil {
		panic("testnet: EtcdCluster.Restart on a cluster without a test")
	}
	c.t.Helper()
	if err := c.Start(i); err != nil {
		c.t.Fatalf("etcd cluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitHealthy(ctx, i); err != nil {
		c.t.Fatalf("etcd cluster: %v", err)
	}
}

// Running reports whether member i's process is running.
func (c *EtcdCluster) Running(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// WaitHealthy waits until member i answers /health with health true (it
// has a leader and can serve a quorum read).
func (c *EtcdCluster) WaitHealthy(ctx context.Context, i int) error {
	m := c.members[i]
	var last error
	for {
		var resp struct {
			Health string `json:"health"`
		}
		last = c.getJSON(ctx, m.ClientURL+"/health", &resp)
		if last == nil && resp.Health == "true" {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("health %q", resp.Health)
		}
		if !c.Running(i) {
			return fmt.Errorf("etcd member %s exited (log: %s): %s", m.Name, m.logPath, c.logTail(i))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for etcd member %s to be healthy (log: %s): %w: %w", m.Name, m.logPath, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Leader returns the index of the member that running members report as
// leader, or -1 when none does.
func (c *EtcdCluster) Leader(ctx context.Context) int {
	for i := range c.members {
		if !c.Running(i) {
			continue
		}
		st, err := c.status(ctx, i)
		if err != nil || st.Leader == "" || st.Leader == "0" {
			continue
		}
		for j := range c.members {
			if sj, err := c.status(ctx, j); err == nil && sj.Header.MemberID == st.Leader {
				return j
			}
		}
	}
	return -1
}

// WaitLeader waits, at most two minutes, until some running member reports
// a leader and returns its index.
func (c *EtcdCluster) WaitLeader(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if l := c.Leader(ctx); l >= 0 {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("waiting for an etcd leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// memberStatus is the part of etcd's maintenance status the helper reads
// (uint64 fields are strings in the JSON gateway).
type memberStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

func (c *EtcdCluster) status(ctx context.Context, i int) (memberStatus, error) {
	var st memberStatus
	err := c.postJSON(ctx, c.members[i].ClientURL+"/v3/maintenance/status", &st)
	return st, err
}

func (c *EtcdCluster) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, out)
}

func (c *EtcdCluster) postJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte("{}")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.doJSON(req, out)
}

func (c *EtcdCluster) doJSON(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return fmt.Errorf("%s answered %s: %s", req.URL, resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", req.URL, err)
	}
	return nil
}

// logTail returns the end of member i's log, for failure messages.
func (c *EtcdCluster) logTail(i int) string {
	b, err := os.ReadFile(c.members[i].logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Close kills every member; their data stays in the cluster's directory
// (t.TempDir removes StartEtcdCluster's).
func (c *EtcdCluster) Close() {
	for i := range c.members {
		c.Kill(i)
	}
}
