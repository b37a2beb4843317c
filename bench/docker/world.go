package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/test/dockerd"
	"github.com/calyx-net/calyx/test/hostnode"
)

// The networks, and what the report calls them.
const (
	oursNet = "bench-calyx"
	peerNet = "bench-bridge"
	noneNet = "none"
	baseNet = "bench-base" // the connect test's container lives here

	oursIs = "the calyx network and calyx-ipam IPAM drivers of calyx-node (embedded etcd)"
	peerIs = "Docker's built-in bridge driver and default IPAM (a user-defined bridge network, no iptables)"

	oursPool = "10.68.0.0/16"
	peerPool = "10.69.0.0/16"
	basePool = "10.70.0.0/16"

	metricsAddr = "127.0.0.1:9091" // calyx-node's, inside the namespace
	connectCtr  = "bench-connect"
)

// world is the benchmark's Docker host: a namespace, a private dockerd in
// it and calyx-node serving its plugins.
type world struct {
	nsName string
	netns  ns.NetNS
	d      *dockerd.Daemon
	node   *hostnode.Node
}

// newWorld builds the host and its three networks, and checks that a
// container on each network gets an address of the network's subnet.
func newWorld(ctx context.Context, binDir, work string) (_ *world, err error) {
	w := &world{nsName: fmt.Sprintf("bench-%d-docker", os.Getpid())}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", w.nsName).CombinedOutput(); err != nil {
		w.nsName = "" // not ours to delete
		return nil, fmt.Errorf("ip netns add: %w: %s", err, bytes.TrimSpace(out))
	}
	if w.netns, err = ns.GetNS("/run/netns/" + w.nsName); err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", w.nsName, err)
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", w.nsName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("setting lo up in %s: %w: %s", w.nsName, err, bytes.TrimSpace(out))
	}
	logf("starting a private dockerd in %s", w.nsName)
	if w.d, err = dockerd.StartDaemon(ctx, dockerd.Options{NS: w.netns, Logf: logf}); err != nil {
		return nil, err
	}
	logf("starting calyx-node in dockerd's namespaces")
	d := w.d
	w.node, err = hostnode.Start(ctx, hostnode.Config{
		BinDir: binDir, NS: w.netns, Name: "bench-docker", WorkDir: filepath.Join(work, "node"),
		MetricsAddr: metricsAddr, DockerHost: d.Host(), Args: []string{"--log-level", "warn"},
		Command: func(name string, args ...string) *exec.Cmd { return d.Command(context.Background(), name, args...) },
	})
	if err != nil {
		return nil, err
	}
	pool := "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: bench-docker}\nspec: {cidr: " + oursPool + ", blockSize: 26}\n"
	if _, _, err := w.node.Ctl(ctx, pool, "apply", "-f", "-"); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"-d", "calyx", "--ipam-driver", "calyx-ipam", oursNet},
		{"-d", "bridge", "--subnet", peerPool, peerNet},
		{"-d", "bridge", "--subnet", basePool, baseNet},
	} {
		if _, err := d.Docker(ctx, append([]string{"network", "create"}, args...)...); err != nil {
			return nil, err
		}
	}
	// A container on each network has an address of its subnet and
	// reaches another: what is measured below is a networked container.
	for net, pool := range map[string]string{oursNet: oursPool, peerNet: peerPool} {
		if err := w.checkNetwork(ctx, net, pool); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// checkNetwork starts a container on net, checks it has an address of
// pool, and that a second container on net pings it; then removes it.
func (w *world) checkNetwork(ctx context.Context, net, pool string) error {
	name := "bench-check-" + net
	if _, err := w.d.Docker(ctx, "run", "-d", "--name", name, "--network", net, dockerd.BusyboxImage, "sleep", "600"); err != nil {
		return err
	}
	defer func() { _, _ = w.d.Docker(context.WithoutCancel(ctx), "rm", "-f", name) }()
	out, err := w.d.Docker(ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+net+"\").IPAddress}}", name)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil || !netip.MustParsePrefix(pool).Contains(ip) {
		return fmt.Errorf("a container on %s has the address %q, want one of %s", net, strings.TrimSpace(out), pool)
	}
	if _, err := w.d.Docker(ctx, "run", "--rm", "--network", net, dockerd.BusyboxImage, "ping", "-c", "1", "-W", "2", ip.String()); err != nil {
		return fmt.Errorf("a container on %s cannot ping another (%s): %w", net, ip, err)
	}
	logf("containers on %s get addresses of %s and reach each other", net, pool)
	return nil
}

// close removes the containers and networks while calyx-node still
// serves the plugin, then stops calyx-node and dockerd (which removes
// its containers, mounts, cgroups and files) and deletes the namespace.
// It works with a context of its own: after ^C the run's is cancelled.
func (w *world) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if w.d != nil {
		if out, err := w.d.Docker(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			if _, err := w.d.Docker(ctx, append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
				logf("removing the containers: %v", err)
			}
		}
		for _, net := range []string{oursNet, peerNet, baseNet} {
			_, _ = w.d.Docker(ctx, "network", "rm", net)
		}
	}
	if w.node != nil {
		if err := w.node.Stop(); err != nil {
			logf("stopping calyx-node: %v", err)
		}
	}
	if w.d != nil {
		if err := w.d.Stop(); err != nil {
			logf("stopping dockerd: %v", err)
		}
	}
	if w.netns != nil {
		_ = w.netns.Close()
	}
	if w.nsName != "" {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", w.nsName).CombinedOutput(); err != nil {
			logf("ip netns del %s: %v: %s", w.nsName, err, bytes.TrimSpace(out))
		}
	}
}

// dockerdFlags are the flags dockerd runs with that shape the peer's
// path (bridge, iptables, forwarding, proxy, cgroups), read from its
// command line.
func (w *world) dockerdFlags() (string, error) {
	pid, err := os.ReadFile(filepath.Join(w.d.Root(), "docker.pid"))
	if err != nil {
		return "", fmt.Errorf("reading dockerd's pid: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		return "", fmt.Errorf("dockerd's pid file: %w", err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(n) + "/cmdline")
	if err != nil {
		return "", fmt.Errorf("reading dockerd's command line: %w", err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	var keep []string
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--bridge"), strings.HasPrefix(a, "--ip"), strings.HasPrefix(a, "--userland-proxy"),
			strings.HasPrefix(a, "--storage-driver"):
			keep = append(keep, a)
		case a == "--exec-opt" && i+1 < len(args):
			keep = append(keep, a+" "+args[i+1])
		}
	}
	if len(keep) == 0 {
		return "", errors.New("no networking flags on dockerd's command line")
	}
	return strings.Join(keep, " "), nil
}
