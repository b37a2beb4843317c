package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

const (
	metricsAddr = "127.0.0.1:9091"
	nodeName    = "bench-host"
	// hostIP is the host's address; the remote nodes are on its subnet,
	// from remoteBase on, so that their routes are native (no VXLAN).
	hostIP         = "192.0.2.10/24"
	remoteBase     = 100
	maxRemoteNodes = 150
)

// etcdPorts are the external etcd's client and peer ports on the host
// namespace's loopback, which nothing else uses.
var etcdPorts = []int{2379, 2380}

// world is the benchmark's namespaces, etcd and calyx-node.
type world struct {
	prefix  string // bench-<pid>
	binDir  string
	host    ns.NetNS
	etcd    *testnet.EtcdCluster // nil with -embedded
	etcdPID int                  // the external etcd's, 0 with -embedded
	node    *hostnode.Node
	pid     int // calyx-node's
	client  *localapi.Client

	mu   sync.Mutex
	made []string // namespaces to delete, host first
	ctrs []string // container namespace names, in endpoint order
}

// newWorld creates the host namespace and starts calyx-node in it, and
// unless embedded, first an etcd server for it, in it.
func newWorld(ctx context.Context, work, binDir string, embedded bool, nodeArgs []string) (_ *world, err error) {
	w := &world{prefix: fmt.Sprintf("bench-%d", os.Getpid()), binDir: binDir}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	hostName := w.prefix + "-host"
	if err := w.addNS(ctx, hostName); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", hostName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("setting lo up in %s: %w: %s", hostName, err, bytes.TrimSpace(out))
	}
	if w.host, err = ns.GetNS("/run/netns/" + hostName); err != nil {
		return nil, err
	}
	cfg := hostnode.Config{BinDir: binDir, NS: w.host, Name: nodeName, IP: hostIP,
		WorkDir: filepath.Join(work, "node"), MetricsAddr: metricsAddr, Args: append([]string{"--log-level", "warn", "--bgp=false"}, nodeArgs...)}
	if !embedded {
		logf("starting etcd in %s", hostName)
		// etcd's own raft timing, as a production member runs.
		w.etcd, err = testnet.NewEtcdCluster(ctx, filepath.Join(work, "etcd"), 1, testnet.EtcdClusterOptions{
			Ports: etcdPorts, HeartbeatMS: 100, ElectionMS: 1000,
			Start: func(cmd *exec.Cmd) error { return hostnode.StartIn(w.host, cmd) },
			Dial:  func(ctx context.Context, _, addr string) (net.Conn, error) { return w.dialHost(ctx, addr) },
		})
		if err != nil {
			return nil, fmt.Errorf("starting etcd: %w", err)
		}
		w.etcdPID = w.etcd.Member(0).PID()
		etcdCfg := w.etcd.ClientConfig()
		cfg.Etcd = &etcdCfg
	}
	logf("starting calyx-node in %s", hostName)
	if w.node, err = hostnode.Start(ctx, cfg); err != nil {
		return nil, err
	}
	w.client = localapi.NewClient(w.node.Socket())
	if w.pid, err = findPID(filepath.Join(binDir, "calyx-node")); err != nil {
		return nil, err
	}
	return w, nil
}

// findPID returns the one process running the executable at path: the
// benchmark's own calyx-node (path is in its temporary directory).
func findPID(path string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		return 0, fmt.Errorf("looking for calyx-node's process: %d processes run %s, want 1", len(pids), path)
	}
	return pids[0], nil
}

// addNS creates a named namespace. Deleting it (close) also deletes the
// veth ends in it, and with them their peers.
func (w *world) addNS(ctx context.Context, name string) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	w.mu.Lock()
	w.made = append(w.made, name)
	w.mu.Unlock()
	return nil
}

// addContainers creates n container namespaces, par at a time.
func (w *world) addContainers(ctx context.Context, n, par int) error {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-c%04d", w.prefix, i)
	}
	w.ctrs = names
	return forEach(ctx, n, par, func(i int) error { return w.addNS(ctx, names[i]) })
}

// forEach runs f(0..n-1), par at a time, and stops at the first error.
func forEach(parent context.Context, n, par int, f func(i int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, par)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := parent.Err(); err != nil {
		return err // ^C: what it did to the calls in flight is no news
	}
	return errors.Join(all...)
}

// close stops calyx-node and etcd and deletes every namespace the
// benchmark made: the containers' (with their veths) and the host's. It
// runs on ^C too.
func (w *world) close() {
	if w.node != nil {
		if err := w.node.Stop(); err != nil {
			logf("stopping calyx-node: %v", err)
		}
	}
	if w.etcd != nil {
		w.etcd.Close()
	}
	if w.host != nil {
		_ = w.host.Close()
	}
	w.mu.Lock()
	made := w.made
	w.mu.Unlock()
	if len(made) > 1 {
		logf("deleting %d namespaces", len(made))
	}
	// Not the caller's context: cleanup must run after ^C.
	_ = forEach(context.Background(), len(made), 8, func(i int) error {
		if out, err := exec.Command("ip", "netns", "del", made[i]).CombinedOutput(); err != nil {
			logf("ip netns del %s: %v: %s", made[i], err, bytes.TrimSpace(out))
		}
		return nil
	})
}

// nodeStatus asks calyx-node what it has computed (calyxctl node status).
func (w *world) nodeStatus(ctx context.Context) (localapi.NodeStatusResponse, error) {
	var st localapi.NodeStatusResponse
	err := w.client.Do(ctx, localapi.PathNodeStatus, struct{}{}, &st)
	return st, err
}

// kernelRoutes counts the host namespace's calyx routes (protocol 80):
// via another host, and to a local endpoint's interface.
func (w *world) kernelRoutes(ctx context.Context) (remote, local int, err error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", w.prefix+"-host", "-4", "route", "show", "proto", "80").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("listing the host's routes: %w", err)
	}
	remote, local = countRoutes(string(out))
	return remote, local, nil
}

// countRoutes counts `ip route` lines via a gateway and on a calyx
// interface.
func countRoutes(out string) (remote, local int) {
	for line := range strings.Lines(out) {
		switch {
		case strings.Contains(line, " via "):
			remote++
		case strings.Contains(line, " dev calyx"):
			local++
		}
	}
	return remote, local
}

// waitFor polls cond every second until it holds, for at most limit;
// cond returns what it saw, for the error.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, saw, err := cond()
		if err == nil && ok {
			return nil
		}
		if err != nil {
			saw = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting %s for %s: %s", limit, what, saw)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// dialMetrics opens a connection to calyx-node's metrics, from a thread
// inside the host namespace where they listen.
func (w *world) dialMetrics(ctx context.Context) (net.Conn, error) {
	var conn net.Conn
	err := w.host.Do(func(ns.NetNS) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", metricsAddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to calyx-node's metrics: %w", err)
	}
	return conn, nil
}
