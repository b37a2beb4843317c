package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/calyx-net/calyx/test/hostnode"
)

// world is the benchmark's namespaces and calyx-node.
type world struct {
	prefix  string // bench-<pid>
	host    ns.NetNS
	node    *hostnode.Node
	ctrs    []string // container namespace paths
	made    []string // namespace names to delete
	tool    string
	cniPath string
	confDir string
	work    string
}

func newWorld(ctx context.Context, work, binDir, tool string, nodeArgs []string) (_ *world, err error) {
	w := &world{prefix: fmt.Sprintf("bench-%d", os.Getpid()), tool: tool, work: work,
		cniPath: binDir + ":" + refPlugins, confDir: filepath.Join(work, "net.d")}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	hostName := w.prefix + "-host"
	if err := w.addNS(hostName); err != nil {
		return nil, err
	}
	if w.host, err = ns.GetNS("/run/netns/" + hostName); err != nil {
		return nil, err
	}
	logf("creating %d container namespaces", seqN)
	for i := range seqN {
		name := fmt.Sprintf("%s-c%03d", w.prefix, i)
		if err := w.addNS(name); err != nil {
			return nil, err
		}
		w.ctrs = append(w.ctrs, "/run/netns/"+name)
	}
	logf("starting calyx-node in %s", hostName)
	w.node, err = hostnode.Start(ctx, hostnode.Config{BinDir: binDir, NS: w.host, Name: "bench-host",
		WorkDir: filepath.Join(work, "node"), MetricsAddr: metricsAddr, Args: append([]string{"--log-level", "warn"}, nodeArgs...)})
	if err != nil {
		return nil, err
	}
	pool := "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: bench-ipv4}\nspec: {cidr: 10.68.0.0/16, blockSize: 26}\n"
	if _, _, err := w.node.Ctl(ctx, pool, "apply", "-f", "-"); err != nil {
		return nil, err
	}
	return w, nil
}

// addNS creates a named namespace with its loopback up.
func (w *world) addNS(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	w.made = append(w.made, name)
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("setting lo up in %s: %w: %s", name, err, out)
	}
	return nil
}

// close stops calyx-node and removes every namespace the benchmark made.
func (w *world) close() {
	if w.node != nil {
		if err := w.node.Stop(); err != nil {
			logf("stopping calyx-node: %v", err)
		}
	}
	if w.host != nil {
		_ = w.host.Close()
	}
	for _, name := range w.made {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			logf("ip netns del %s: %v: %s", name, err, out)
		}
	}
}

// writeConfs writes the three networks' .conf files.
func (w *world) writeConfs(ours, peer, floor impl) error {
	if err := os.MkdirAll(w.confDir, 0o755); err != nil {
		return err
	}
	confs := map[string]map[string]any{
		// info: the plugin logs each ADD's and DEL's time and steps, which
		// the sequential runs read (pluginSteps).
		ours.name: {"cniVersion": "1.0.0", "name": ours.name, "type": "calyx", "log_level": "info",
			"agent_socket": w.node.Socket(), "ipam": map[string]any{"type": "calyx-ipam"}},
		// Flannel's delegate config: a gateway bridge, default route, no
		// masquerade (no iptables on the path), host-local addresses.
		peer.name: {"cniVersion": "1.0.0", "name": peer.name, "type": "bridge", "bridge": "benchbr0",
			"isGateway": true, "isDefaultGateway": true, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{"type": "host-local", "subnet": "10.69.0.0/16", "dataDir": filepath.Join(w.work, "host-local")}},
		floor.name: {"cniVersion": "1.0.0", "name": floor.name, "type": "loopback"},
	}
	for name, c := range confs {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(w.confDir, name+".conf"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cnitool runs one cnitool command in the host namespace and returns its
// wall time.
func (w *world) cnitool(ctx context.Context, cmdName, network, netns string) (time.Duration, error) {
	d, _, err := w.cnitoolOut(ctx, cmdName, network, netns)
	return d, err
}

// cnitoolOut is cnitool, also returning what the command printed.
func (w *world) cnitoolOut(ctx context.Context, cmdName, network, netns string) (time.Duration, string, error) {
	cmd := exec.CommandContext(ctx, w.tool, cmdName, network, netns)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NETCONFPATH=" + w.confDir, "CNI_PATH=" + w.cniPath}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := hostnode.RunIn(w.host, cmd); err != nil {
		return 0, "", fmt.Errorf("cnitool %s %s %s: %w: %s", cmdName, network, netns, err, strings.TrimSpace(out.String()))
	}
	return time.Since(start), out.String(), nil
}

// seqResult is a sequential run: wall times, and the calyx plugin's own
// account of each call (its "took" and steps, from its log), by name.
type seqResult struct {
	add, del []time.Duration
	steps    map[string][]time.Duration // "add took", "add agent_add", ...
	reap     time.Duration              // from the last DEL until no veth was left
}

// pluginSteps reads the calyx plugin's log line of an ADD ("attached")
// or DEL ("detached"): took=1.2ms steps="check=... agent_add=..." into
// steps under "<cmd> took" and "<cmd> <step>".
func pluginSteps(cmdName, out string, steps map[string][]time.Duration) {
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.Contains(line, "msg=attached") && !strings.Contains(line, "msg=detached") {
			continue
		}
		if i := strings.Index(line, " took="); i >= 0 {
			f, _, _ := strings.Cut(line[i+len(" took="):], " ")
			if d, err := time.ParseDuration(f); err == nil {
				steps[cmdName+" took"] = append(steps[cmdName+" took"], d)
			}
		}
		if i := strings.Index(line, ` steps="`); i >= 0 {
			list, _, _ := strings.Cut(line[i+len(` steps="`):], `"`)
			for kv := range strings.FieldsSeq(list) {
				k, v, _ := strings.Cut(kv, "=")
				if d, err := time.ParseDuration(v); err == nil {
					steps[cmdName+" "+k] = append(steps[cmdName+" "+k], d)
				}
			}
		}
	}
}

// sequential ADDs n containers one after another, then DELs them.
func (w *world) sequential(ctx context.Context, im impl, n int) (seqResult, error) {
	r := seqResult{steps: map[string][]time.Duration{}}
	for i := range n {
		d, out, err := w.cnitoolOut(ctx, "add", im.name, w.ctrs[i])
		if err != nil {
			return r, err
		}
		r.add = append(r.add, d)
		pluginSteps("add", out, r.steps)
	}
	for i := range n {
		d, out, err := w.cnitoolOut(ctx, "del", im.name, w.ctrs[i])
		if err != nil {
			return r, err
		}
		r.del = append(r.del, d)
		pluginSteps("del", out, r.steps)
	}
	var err error
	r.reap, err = w.settle(ctx)
	return r, err
}

// settle waits until no veth of Calyx is left in the host namespace:
// calyx-node deletes them after DEL has answered, and the next
// measurement (perhaps the peer's) must not pay for that. It returns how
// long it waited.
func (w *world) settle(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		var left []string
		err := w.host.Do(func(ns.NetNS) error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			links, err := nlsafe.LinkList(h)
			if nlsafe.IsInterrupted(err) {
				// Links kept changing (they are being deleted): look again.
				left, err = []string{"?"}, nil
			}
			for _, l := range links {
				if strings.HasPrefix(l.Attrs().Name, localapi.HostIfPrefix) {
					left = append(left, l.Attrs().Name)
				}
			}
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("listing the host namespace's links: %w", err)
		}
		if len(left) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("calyx-node did not delete %d veths within 30s after their DELs: %v", len(left), left)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type burstResult struct {
	add, del         []time.Duration
	addRate, delRate float64 // per second, over the burst's wall time
	// addCPU is the machine's busy CPU time (every process) during the
	// ADDs, per ADD: with the CPUs saturated, what bounds the rate.
	addCPU time.Duration
}

// burst ADDs n containers par at a time, then DELs them the same way.
func (w *world) burst(ctx context.Context, im impl, n, par int) (burstResult, error) {
	var r burstResult
	var err error
	var wall time.Duration
	cpu0, err := busyCPU()
	if err != nil {
		return r, err
	}
	if r.add, wall, err = w.parallel(ctx, "add", im, n, par); err != nil {
		return r, err
	}
	r.addRate = float64(n) / wall.Seconds()
	cpu1, err := busyCPU()
	if err != nil {
		return r, err
	}
	r.addCPU = (cpu1 - cpu0) / time.Duration(n)
	if r.del, wall, err = w.parallel(ctx, "del", im, n, par); err != nil {
		return r, err
	}
	r.delRate = float64(n) / wall.Seconds()
	_, err = w.settle(ctx)
	return r, err
}

// busyCPU is the time every CPU of the machine has spent busy since boot
// (/proc/stat: all but idle and iowait), at its 10 ms resolution.
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %d of %q: %w", i+1, line, err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

func (w *world) parallel(ctx context.Context, cmdName string, im impl, n, par int) ([]time.Duration, time.Duration, error) {
	next := make(chan int)
	var mu sync.Mutex
	var ds []time.Duration
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for range par {
		wg.Go(func() {
			for i := range next {
				d, err := w.cnitool(ctx, cmdName, im.name, w.ctrs[i])
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ds = append(ds, d)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return ds, time.Since(start), errors.Join(errs...)
}

// counters are the calyx-node metrics the benchmark reads.
type counters struct {
	programSum, programCount float64
	addSum, addCount         float64
	readySum, readyCount     float64
	delSum, delCount         float64
}

func (c counters) sub(o counters) counters {
	return counters{c.programSum - o.programSum, c.programCount - o.programCount,
		c.addSum - o.addSum, c.addCount - o.addCount, c.readySum - o.readySum, c.readyCount - o.readyCount,
		c.delSum - o.delSum, c.delCount - o.delCount}
}

// scrape reads calyx-node's metrics. The connection is dialled on a
// thread inside the host namespace, where the metrics listen.
func (w *world) scrape(ctx context.Context) (counters, error) {
	var conn net.Conn
	err := w.host.Do(func(ns.NetNS) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", metricsAddr)
		return err
	})
	if err != nil {
		return counters{}, fmt.Errorf("connecting to calyx-node's metrics: %w", err)
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return counters{}, fmt.Errorf("reading calyx-node's metrics: %w", err)
	}
	defer resp.Body.Close()
	var c counters
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "calyx_dataplane_endpoint_program_seconds_sum":
			c.programSum = v
		case name == "calyx_dataplane_endpoint_program_seconds_count":
			c.programCount = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_sum") && strings.Contains(name, `op="add"`):
			c.addSum = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_count") && strings.Contains(name, `op="add"`):
			c.addCount = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_sum") && strings.Contains(name, `op="ready"`):
			c.readySum = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_count") && strings.Contains(name, `op="ready"`):
			c.readyCount = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_sum") && strings.Contains(name, `op="del"`):
			c.delSum = v
		case strings.HasPrefix(name, "calyx_cni_request_seconds_count") && strings.Contains(name, `op="del"`):
			c.delCount = v
		}
	}
	return c, sc.Err()
}

// ipamOnly execs an IPAM plugin directly, as a main plugin (bridge) does
// for its addresses: n ADDs, then n DELs, each one process, timed from
// exec to exit (B2 (b): IPAM via CNI).
func (w *world) ipamOnly(ctx context.Context, plugin string, conf []byte, n int) (add, del []time.Duration, err error) {
	exec1 := func(cmdName, id string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(w.pluginDir(plugin), plugin))
		cmd.Env = []string{"CNI_COMMAND=" + cmdName, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + w.ctrs[0],
			"CNI_IFNAME=eth0", "CNI_PATH=" + w.cniPath}
		cmd.Stdin = bytes.NewReader(conf)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := hostnode.RunIn(w.host, cmd); err != nil {
			return 0, fmt.Errorf("%s %s %s: %w: %s", plugin, cmdName, id, err, strings.TrimSpace(out.String()))
		}
		return time.Since(start), nil
	}
	for _, cmdName := range []string{"ADD", "DEL"} {
		for i := range n {
			d, err := exec1(cmdName, fmt.Sprintf("ipam-%03d", i))
			if err != nil {
				return nil, nil, err
			}
			if cmdName == "ADD" {
				add = append(add, d)
			} else {
				del = append(del, d)
			}
		}
	}
	return add, del, nil
}

// pluginDir is the directory holding plugin: the benchmark's binaries or
// Debian's.
func (w *world) pluginDir(plugin string) string {
	dir, _, _ := strings.Cut(w.cniPath, ":")
	if _, err := os.Stat(filepath.Join(dir, plugin)); err == nil {
		return dir
	}
	return refPlugins
}

// ipamConfs are the configurations the IPAM plugins are exec'd with: a
// bridge network's, as bridge passes it on.
func (w *world) ipamConfs() (ours, peer []byte, err error) {
	ours, err = json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench-ipam", "type": "bridge",
		"ipam": map[string]any{"type": "calyx-ipam", "agent_socket": w.node.Socket()}})
	if err != nil {
		return nil, nil, err
	}
	peer, err = json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench-ipam", "type": "bridge",
		"ipam": map[string]any{"type": "host-local", "subnet": "10.70.0.0/16", "dataDir": filepath.Join(w.work, "host-local-ipam")}})
	return ours, peer, err
}
