package dockerd_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/dockerd"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }

func TestBusyboxTar(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("no /bin/busybox (Debian's busybox-static): %v", err)
	}
	b, err := dockerd.BusyboxTar(t.Context(), "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	r := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h.Linkname
	}
	for _, name := range []string{"bin/busybox", "etc/passwd", "tmp/"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in the tarball", name)
		}
	}
	for _, applet := range []string{"sh", "true", "echo", "ping", "ip", "sleep", "nc"} {
		if got["bin/"+applet] != "busybox" {
			t.Errorf("bin/%s is not a link to busybox (%q)", applet, got["bin/"+applet])
		}
	}
}

// TestSmoke starts a private dockerd in a test namespace, runs busybox
// containers, restarts the daemon and checks that stopping it leaves no
// process, mount, cgroup or file behind.
func TestSmoke(t *testing.T) {
	netns := testnet.NewNS(t)
	begin := time.Now()
	d := dockerd.Start(t, dockerd.Options{NS: netns})
	t.Logf("dockerd started and the image imported in %s", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	run := func() {
		t.Helper()
		begin := time.Now()
		if _, err := d.Docker(ctx, "run", "--rm", "--network", "none", dockerd.BusyboxImage, "true"); err != nil {
			t.Fatal(err)
		}
		t.Logf("docker run --rm --network none true: %s", time.Since(begin).Round(time.Millisecond))
	}
	run()
	out, err := d.Docker(ctx, "run", "--rm", "--network", "none", dockerd.BusyboxImage, "sh", "-c", "echo hi")
	if err != nil {
		t.Fatal(err)
	}
	if out != "hi\n" {
		t.Errorf("echo hi in a container printed %q", out)
	}

	// dockerd runs in the test's network namespace.
	pid := dockerdPID(t, d)
	if !sameFile(t, "/proc/"+strconv.Itoa(pid)+"/ns/net", netns.Path()) {
		t.Errorf("dockerd (pid %d) is not in the test's network namespace %s", pid, netns.Path())
	}

	// The plugin directory dockerd sees is PluginDir outside, and a process
	// started with Command sees it where dockerd does.
	probe := filepath.Join(dockerd.PluginDirInside, "probe")
	if out, err := d.Command(ctx, "sh", "-c", "touch "+probe+" && ls /run/docker/plugins").CombinedOutput(); err != nil {
		t.Fatalf("touching %s inside: %v: %s", probe, err, out)
	}
	if _, err := os.Stat(filepath.Join(d.PluginDir(), "probe")); err != nil {
		t.Errorf("a file made in %s inside is not in PluginDir: %v", dockerd.PluginDirInside, err)
	}
	if _, err := os.Stat(filepath.Join("/run/docker/plugins", "probe")); err == nil {
		t.Errorf("the private plugin directory leaked into the machine's /run/docker/plugins")
	}

	begin = time.Now()
	if err := d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("dockerd restarted in %s", time.Since(begin).Round(time.Millisecond))
	run()

	root, holder := d.Root(), d.HolderPID()
	begin = time.Now()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s", time.Since(begin).Round(time.Millisecond))
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Stop: %v", root, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(holder)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the namespace holder %d is still running", holder)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(root)) {
			t.Errorf("process %s is still running: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(root)
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, name) {
			t.Errorf("a mount is left: %s", l)
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + name)
	for _, c := range append(cgroups, v2...) {
		t.Errorf("a cgroup is left: %s", c)
	}
}

// TestTwoDaemons runs two daemons side by side, as a test of two hosts
// would: each has its own namespaces, plugin directory and containers.
func TestTwoDaemons(t *testing.T) {
	a := dockerd.Start(t, dockerd.Options{NS: testnet.NewNS(t)})
	b := dockerd.Start(t, dockerd.Options{NS: testnet.NewNS(t)})
	if a.PluginDir() == b.PluginDir() {
		t.Fatal("two daemons share a plugin directory")
	}
	ctx := t.Context()
	if _, err := a.Docker(ctx, "run", "-d", "--name", "only-a", "--network", "none", dockerd.BusyboxImage, "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	if out, err := b.Docker(ctx, "ps", "-aq"); err != nil || out != "" {
		t.Errorf("docker ps on b: %q, %v; want nothing", out, err)
	}
	if out, err := a.Docker(ctx, "ps", "-q", "--filter", "name=only-a"); err != nil || out == "" {
		t.Errorf("docker ps on a: %q, %v; want the container", out, err)
	}
	// a stops with its container running: Stop kills it.
	begin := time.Now()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped with a running container in %s", time.Since(begin))

	// A process left in b's namespaces (as a calyx-node started with
	// Command might be) is killed by Stop.
	sleeper := b.Command(ctx, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("a process started with Command outlived Stop")
	}
}

func dockerdPID(t *testing.T, d *dockerd.Daemon) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Root(), "docker.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// TestStartDaemon starts a daemon without a testing.TB, as a benchmark
// does, and stops it.
func TestStartDaemon(t *testing.T) {
	netns := testnet.NewNS(t)
	if _, err := dockerd.StartDaemon(t.Context(), dockerd.Options{NS: netns, Dockerd: "calyx-no-such-dockerd"}); !errors.Is(err, dockerd.ErrNotInstalled) {
		t.Errorf("StartDaemon without dockerd: %v, want ErrNotInstalled", err)
	}
	d, err := dockerd.StartDaemon(t.Context(), dockerd.Options{NS: netns, Logf: t.Logf})
	if errors.Is(err, dockerd.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	root := d.Root()
	if _, err := d.Docker(t.Context(), "run", "--rm", "--network", "none", dockerd.BusyboxImage, "true"); err != nil {
		t.Error(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Stop: %v", root, err)
	}
}
