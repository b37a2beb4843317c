// Package dockerd runs a private dockerd for a test: Debian's docker.io in
// a test's network namespace, with its own socket, data, exec root,
// cgroup parent and plugin directory, and a busybox image imported from
// Debian's busybox-static, so that Calyx's Docker plugin can be tested
// against the real thing without a registry and without touching the
// machine's own Docker, routes, firewall or sysctls.
//
// Why these namespaces: dockerd finds network and IPAM plugins only in
// /run/docker/plugins (a path built into it), so two dockerds, or one
// beside the machine's own, would share their plugins unless each has its
// own /run. Start therefore runs a holder process that enters the test's
// network namespace with `nsenter --net=` (not `ip netns exec`, which
// remounts /sys and hides the cgroup mounts dockerd needs) and then
// `unshare --mount --propagation private`, and in that new mount namespace
// mounts a tmpfs over /run (so no system containerd socket at
// /run/containerd is seen and shim sockets stay private) and bind-mounts
// a directory of the test's over /run/docker. dockerd, and anything else
// the test starts with Command, enter both namespaces of the holder with
// `nsenter --target <holder> --mount --net`. Mounts made there never reach
// the machine's mount namespace, and they all go when the last process in
// it exits.
//
// Because /run/docker is a bind mount, the plugin directory is reachable
// from outside as well: PluginDir is its path in the machine's mount
// namespace and PluginDirInside (/run/docker/plugins) the same directory
// seen from inside. A calyx-node serving the Docker plugin sockets can
// therefore run either in the network namespace alone with
// `--docker-plugin-dir <PluginDir>` (hostnode.StartIn), or in both
// namespaces with the default directory (Daemon.Command); dockerd meets
// the same sockets either way.
//
// Start is for tests (it skips, fails and cleans up through a
// testing.TB); StartDaemon is the same daemon for a program that is not a
// test, such as bench/docker, which returns errors and leaves Stop to its
// caller.
package dockerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/testnet"
)

// PluginDirInside is where dockerd looks for plugin sockets, inside the
// daemon's mount namespace.
const PluginDirInside = "/run/docker/plugins"

// Options configure Start. NS is required; the zero value of the rest
// runs dockerd and docker found in $PATH and imports /bin/busybox.
type Options struct {
	// NS is the network namespace standing for the host (testnet.NewNS).
	NS ns.NetNS
	// Dockerd and CLI are the daemon and client binaries; default
	// "dockerd" and "docker" in $PATH.
	Dockerd, CLI string
	// Busybox is the static busybox the image is built from; default
	// /bin/busybox (Debian's busybox-static).
	Busybox string
	// Args are extra dockerd flags (for example --storage-driver=vfs).
	Args []string
	// Logf receives what Stop reports: processes it had to kill. Start
	// uses the test's Logf when it is nil; StartDaemon drops the lines.
	Logf func(format string, args ...any)
}

// Daemon is a running private dockerd and the namespaces it runs in.
type Daemon struct {
	logf   func(format string, args ...any)
	opts   Options
	root   string // every file of the daemon's; short, for socket paths
	holder *exec.Cmd
	stdin  io.Closer // the holder's stdin: closing it ends the holder
	hdone  chan struct{}
	log    *testnet.SyncBuffer

	mu      sync.Mutex    // guards following fields
	cmd     *exec.Cmd     // dockerd (via nsenter); nil while stopped
	done    chan struct{} // closed when cmd has exited
	stopped bool          // by Stop: the daemon is gone for good
}

// ErrNotInstalled is wrapped by StartDaemon's error when dockerd, docker
// or the static busybox is missing; Start skips its test then.
var ErrNotInstalled = errors.New("not installed")

// Start starts a private dockerd in opts.NS for t, waits until it answers
// `docker version`, imports the busybox image (BusyboxImage) and stops
// everything when t ends. It skips t when not root or when dockerd,
// docker or busybox is not installed (hack/install-deps.sh installs them).
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	testnet.RequireRoot(t)
	if opts.NS == nil {
		t.Fatal("dockerd.Start: Options.NS is required")
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	d, err := newDaemon(opts)
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatalf("dockerd.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
		if t.Failed() {
			t.Logf("dockerd log (%s):\n%s", d.root, d.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.boot(ctx); err != nil {
		t.Fatalf("dockerd.Start: %v", err)
	}
	return d
}

// StartDaemon is Start for a program that is not a test (a benchmark):
// it starts a private dockerd in opts.NS, waits until it answers `docker
// version` and imports the busybox image, and returns an error where
// Start would fail or skip its test (errors.Is(err, ErrNotInstalled) when
// a binary is missing). The caller must Stop the daemon, on its error
// paths and after an interrupt too: Stop is what kills the containers and
// removes the daemon's cgroups and files. Should the caller die without
// Stop, dockerd gets SIGTERM and the namespace holder ends as its stdin
// closes, as under Start. On error StartDaemon has stopped and removed
// whatever it had started, and the error carries the end of dockerd's log.
func StartDaemon(ctx context.Context, opts Options) (*Daemon, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("starting dockerd: needs root to enter network namespaces and mount")
	}
	if opts.NS == nil {
		return nil, errors.New("starting dockerd: Options.NS is required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	d, err := newDaemon(opts)
	if err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	if err := d.boot(ctx); err != nil {
		log := lastLines(d.Log(), 20)
		return nil, fmt.Errorf("starting dockerd: %w; the end of its log:\n%s", errors.Join(err, d.Stop()), log)
	}
	return d, nil
}

// newDaemon resolves opts' binaries and makes the daemon's directory; it
// starts nothing.
func newDaemon(opts Options) (*Daemon, error) {
	var err error
	if opts.Dockerd, err = lookPath(opts.Dockerd, "dockerd", "docker.io"); err != nil {
		return nil, err
	}
	if opts.CLI, err = lookPath(opts.CLI, "docker", "docker.io"); err != nil {
		return nil, err
	}
	if opts.Busybox == "" {
		opts.Busybox = "/bin/busybox"
	}
	if _, err := os.Stat(opts.Busybox); err != nil {
		return nil, fmt.Errorf("no static busybox to build the test image from (install Debian's busybox-static, see hack/install-deps.sh): %w: %w", ErrNotInstalled, err)
	}
	for _, bin := range []string{"nsenter", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%w (util-linux)", err)
		}
	}
	// Not a test's TempDir: the test's name would make the containerd
	// socket path (under the exec root) longer than a unix socket may be.
	// Stop removes it.
	root, err := os.MkdirTemp("", "calyx-dockerd-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{logf: opts.Logf, opts: opts, root: root, log: &testnet.SyncBuffer{}}
	for _, dir := range []string{"run-docker/plugins", "data", "exec", "cli"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			_ = os.RemoveAll(root)
			return nil, err
		}
	}
	// A configuration file of its own: dockerd refuses to start when a
	// flag repeats a setting of the machine's /etc/docker/daemon.json.
	// Docker before 23 writes its identity key to /etc/docker/key.json
	// unless told another path (later ones refuse the setting).
	conf := "{}\n"
	if keyPathSetting(opts.Dockerd) {
		conf = fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(root, "key.json"))
	}
	if err := os.WriteFile(filepath.Join(root, "daemon.json"), []byte(conf), 0o600); err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	return d, nil
}

// boot starts the namespace holder and dockerd, and imports the image.
func (d *Daemon) boot(ctx context.Context) error {
	if err := d.startHolder(); err != nil {
		return err
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	return d.LoadBusybox(ctx)
}

// lookPath finds bin, or def when bin is "", in $PATH; pkg is the Debian
// package that installs it.
func lookPath(bin, def, pkg string) (string, error) {
	if bin == "" {
		bin = def
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s not found (install Debian's %s, see hack/install-deps.sh): %w: %w", bin, pkg, ErrNotInstalled, err)
	}
	return path, nil
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// holderScript runs in the new mount namespace, with the daemon's root
// directory as $1. It keeps the namespace alive until its stdin closes:
// when Stop closes it, or when the test process dies.
const holderScript = `set -e
mount -t tmpfs -o mode=0755 calyx-dockerd-run /run
mkdir /run/docker
mount --bind "$1/run-docker" /run/docker
echo ready
exec cat >/dev/null`

func (d *Daemon) startHolder() error {
	cmd := exec.Command("nsenter", "--net="+d.opts.NS.Path(), "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", holderScript, "calyx-dockerd-ns", d.root)
	var stderr testnet.SyncBuffer
	cmd.Stderr = &stderr
	// Its own process group, so that a ^C to the test reaches it only by
	// way of the cleanup; no Pdeathsig: a test process that dies closes
	// its stdin, and that ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the namespace holder: %w", err)
	}
	d.holder, d.stdin, d.hdone = cmd, stdin, make(chan struct{})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		_ = cmd.Wait()
		close(d.hdone)
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "ready" {
			return fmt.Errorf("setting up the mount namespace: %s", strings.TrimSpace(stderr.String()))
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("setting up the mount namespace: no answer within 30s: %s", stderr.String())
	}
}

// Root is the directory holding the daemon's socket, data and exec root,
// in the machine's mount namespace.
func (d *Daemon) Root() string { return d.root }

// Host is the daemon's DOCKER_HOST.
func (d *Daemon) Host() string { return "unix://" + filepath.Join(d.root, "docker.sock") }

// Env is the environment a docker client needs to reach this daemon and
// no other: DOCKER_HOST, and DOCKER_CONFIG away from ~/.docker.
func (d *Daemon) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host(), "DOCKER_CONFIG=" + filepath.Join(d.root, "cli")}
}

// PluginDir is the daemon's plugin directory as the machine's mount
// namespace sees it: the directory dockerd sees as PluginDirInside. A
// plugin serving a socket here, from any mount namespace, is the daemon's.
func (d *Daemon) PluginDir() string { return filepath.Join(d.root, "run-docker", "plugins") }

// HolderPID is the process whose network and mount namespaces the daemon
// runs in: /proc/<HolderPID>/ns/mnt is the daemon's mount namespace.
func (d *Daemon) HolderPID() int { return d.holder.Process.Pid }

// Command returns a command that runs name in the daemon's network and
// mount namespaces (it sees PluginDirInside and the daemon's private /run),
// by way of `nsenter --target <holder> --mount --net`. Start it with
// Start or Run as usual; Stop kills whatever is still running there.
func (d *Daemon) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(d.HolderPID()), "--mount", "--net", "--", name}, args...)...)
	cmd.Dir = "/"
	return cmd
}

// cgroupParent is the daemon's --cgroup-parent: containers' cgroups are
// created under it in every hierarchy, and Stop removes it.
func (d *Daemon) cgroupParent() string { return "/" + filepath.Base(d.root) }

func (d *Daemon) args() []string {
	r := d.root
	return append([]string{
		"-H", d.Host(),
		"--config-file", filepath.Join(r, "daemon.json"),
		"--data-root", filepath.Join(r, "data"),
		"--exec-root", filepath.Join(r, "exec"),
		"--pidfile", filepath.Join(r, "docker.pid"),
		// No docker0, no iptables or ip6tables rules, no sysctls.
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--userland-proxy=false",
		// cgroupfs under a parent of its own: never systemd, which would
		// put containers in the machine's slices over D-Bus.
		"--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", d.cgroupParent(),
		// Running containers are killed 2s after Stop asks them to end.
		"--shutdown-timeout=2",
	}, d.opts.Args...)
}

// start starts dockerd and waits until it answers.
func (d *Daemon) start(ctx context.Context) error {
	d.mu.Lock()
	if d.stopped || d.cmd != nil {
		d.mu.Unlock()
		return errors.New("starting dockerd: it is running or stopped for good")
	}
	cmd := d.Command(context.Background(), d.opts.Dockerd, d.args()...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	// SIGTERM if the test process dies: dockerd then stops its
	// containers and containerd itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := startLocked(cmd)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("starting dockerd: %w", err)
	}
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	return d.waitReady(ctx, done)
}

func (d *Daemon) waitReady(ctx context.Context, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
		_, last = d.Docker(vctx, "version", "--format", "{{.Server.Version}}")
		vcancel()
		if last == nil {
			return nil
		}
		select {
		case <-done:
			return errors.New("dockerd exited before answering `docker version`")
		case <-ctx.Done():
			return fmt.Errorf("waiting for dockerd to answer `docker version`: %w: %w", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startLocked starts cmd from a goroutine locked to its OS thread until
// cmd has exited, and returns a channel closed then. Pdeathsig is sent when
// the thread that forked the child exits, not the process: Go ends threads
// whose goroutine exits while locked to them (as testutils.NewNS does on
// purpose), and such a thread may be one that had forked dockerd before.
func startLocked(cmd *exec.Cmd) (chan struct{}, error) {
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		_ = cmd.Wait()
		close(done)
	}()
	return done, <-errc
}

// Docker runs the docker CLI against the daemon and returns its stdout;
// an error carries its stderr.
func (d *Daemon) Docker(ctx context.Context, args ...string) (string, error) {
	return d.docker(ctx, nil, args...)
}

func (d *Daemon) docker(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.opts.CLI, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(d.root, "cli")}, d.Env()...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Log returns what dockerd (and the containerd it runs) has logged.
func (d *Daemon) Log() string { return d.log.String() }

// Restart stops dockerd gracefully and starts it again in the same
// namespaces with the same data, as a daemon upgrade or crash-restart
// would; containers that ran are stopped, images and networks remain.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.stopDaemon(); err != nil {
		return err
	}
	return d.start(ctx)
}

// stopDaemon sends dockerd SIGTERM and waits for it to exit (SIGKILL
// after 30 s). dockerd stops its containers and its containerd first.
func (d *Daemon) stopDaemon() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		err = errors.New("dockerd did not exit within 30s of SIGTERM")
	}
	d.cmd, d.done = nil, nil
	return err
}

// killContainers kills running containers at once: on SIGTERM dockerd
// would give each its own stop timeout (10 s by default) to end.
func (d *Daemon) killContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := d.Docker(ctx, "ps", "-q")
	if ids := strings.Fields(out); err == nil && len(ids) > 0 {
		_, _ = d.Docker(ctx, append([]string{"kill"}, ids...)...)
	}
}

// Stop kills the running containers, stops dockerd, kills whatever is left in its namespaces and
// cgroups (containerd, shims, containers, processes started with
// Command), lets the mount namespace go and removes the daemon's cgroups
// and files. It is safe to call more than once; Start's cleanup calls it.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return nil
	}
	d.stopped = true
	running := d.cmd != nil
	d.mu.Unlock()
	if running {
		d.killContainers()
	}
	errs := []error{d.stopDaemon()}
	if d.holder != nil {
		errs = append(errs, d.sweep())
		_ = d.stdin.Close()
		select {
		case <-d.hdone:
		case <-time.After(10 * time.Second):
			_ = d.holder.Process.Kill()
			<-d.hdone
		}
	}
	errs = append(errs, removeCgroups(d.cgroupParent()))
	if err := os.RemoveAll(d.root); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", d.root, err))
	}
	return errors.Join(errs...)
}

// keyPathSetting reports whether the dockerd binary is older than 23, the
// versions that take deprecated-key-path ("Docker version 20.10.24+dfsg1,
// build ...").
func keyPathSetting(dockerd string) bool {
	out, err := exec.Command(dockerd, "--version").Output()
	if err != nil {
		return false
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return false
	}
	major, _, _ := strings.Cut(f[2], ".")
	n, err := strconv.Atoi(major)
	return err == nil && n < 23
}
