package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/calyx-net/calyx/test/hostnode"
)

// poolFor is the IPPool of a Calyx cluster in mode: Never routes natively
// between the hosts (one subnet), Always puts every cross-host packet in
// VXLAN. Each mode has its own cluster (and etcd), so the pools never
// meet; their CIDRs differ only to tell dumps apart.
func poolFor(m mode) string {
	cidr, vx := "10.68.0.0/16", "Never"
	if m == vxlan {
		cidr, vx = "10.69.0.0/16", "Always"
	}
	return fmt.Sprintf("apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: bench-%s}\nspec: {cidr: %s, blockSize: 26, vxlanMode: %s}\n", m, cidr, vx)
}

// netConf is the CNI network config the runtime hands the calyx plugin:
// no "mtu", so calyx-node derives it from the underlay (less 50 bytes
// under VXLAN).
func netConf(socket string) ([]byte, error) {
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench-routing", "type": "calyx",
		"log_level": "warning", "agent_socket": socket, "ipam": map[string]any{"type": "calyx-ipam"}})
}

// newCalyx builds mode's Calyx cluster: calyx-node on each host, h1's with
// the embedded etcd on its underlay address and h2's joining it with h1's
// client certificate; the pool applied with calyxctl; one container per
// host attached by the calyx plugin, run the way Mesos runs it. It returns
// once the containers ping each other both ways.
func newCalyx(ctx context.Context, m mode, binDir, work string) (_ *topology, err error) {
	t := &topology{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	prefix := "calyx-" + string(m)
	hs, err := t.hosts(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var nodes [2]*hostnode.Node
	for i, h := range hs {
		cfg := hostnode.Config{BinDir: binDir, NS: h.ns, Name: fmt.Sprintf("h%d", i+1), IP: underlay[i].String(),
			WorkDir: filepath.Join(work, fmt.Sprintf("%s-h%d", m, i+1)), NoUplink: true, Args: []string{"--log-level", "warn"}}
		if i == 0 {
			cfg.EtcdIP = underlay[0].Addr().String()
		} else {
			cfg.Join = nodes[0]
		}
		if nodes[i], err = hostnode.Start(ctx, cfg); err != nil {
			return nil, fmt.Errorf("starting calyx-node on %s: %w", h.name, err)
		}
		node := nodes[i]
		t.stop = append(t.stop, func() {
			if err := node.Stop(); err != nil {
				logf("stopping calyx-node %s: %v", node.Name(), err)
			}
		})
		if i == 0 {
			if _, _, err := node.Ctl(ctx, poolFor(m), "apply", "-f", "-"); err != nil {
				return nil, err
			}
		}
	}
	var ctrs [2]*netNS
	var addrs [2]string
	for i, h := range hs {
		if ctrs[i], err = t.ns(ctx, fmt.Sprintf("%s-c%d", prefix, i+1)); err != nil {
			return nil, err
		}
		if addrs[i], err = cniAdd(ctx, binDir, h, nodes[i].Socket(), fmt.Sprintf("bench-%s-c%d", m, i+1), ctrs[i]); err != nil {
			return nil, fmt.Errorf("attaching a container on %s: %w", h.name, err)
		}
	}
	mtu, err := linkMTU(ctx, ctrs[0], "eth0")
	if err != nil {
		return nil, err
	}
	t.pair = pair{name: "calyx", who: "calyx-node on each host, containers attached by the calyx CNI plugin",
		client: ctrs[0], srv: ctrs[1], srvAddr: addrs[1], mtu: mtu}
	// Routes, VXLAN peers and policy reach the far host through etcd:
	// wait until both directions carry a ping.
	if err := waitPing(ctx, ctrs[0], addrs[1]); err != nil {
		return nil, fmt.Errorf("%w; h1's calyx-node log:\n%s", err, nodes[0].Log())
	}
	if err := waitPing(ctx, ctrs[1], addrs[0]); err != nil {
		return nil, fmt.Errorf("%w; h2's calyx-node log:\n%s", err, nodes[1].Log())
	}
	return t, nil
}

// cniAdd runs the calyx plugin's ADD for a container in host's
// namespace, as a runtime does: CNI_* in the environment, the network
// config on stdin. It returns the container's IPv4 address.
func cniAdd(ctx context.Context, binDir string, host *netNS, socket, cid string, ctr *netNS) (string, error) {
	conf, err := netConf(socket)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "calyx"))
	cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + ctr.path(), "CNI_IFNAME=eth0",
		"CNI_PATH=" + binDir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := hostnode.RunIn(host.ns, cmd); err != nil {
		return "", fmt.Errorf("calyx ADD: %w: %s %s", err, strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()))
	}
	return parseCNIResult(out.Bytes())
}

// parseCNIResult returns the first IPv4 address of a CNI 1.0.0 result.
func parseCNIResult(b []byte) (string, error) {
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("parsing the CNI result %q: %w", firstLines(string(b), 3), err)
	}
	for _, ip := range r.IPs {
		if a, _, ok := strings.Cut(ip.Address, "/"); ok && strings.Contains(a, ".") {
			return a, nil
		}
	}
	return "", fmt.Errorf("the CNI result %q has no IPv4 address", firstLines(string(b), 3))
}

// linkMTU reads a link's MTU in n (from `ip -j`: /sys/class/net shows
// the namespace sysfs was mounted in, not the caller's).
func linkMTU(ctx context.Context, n *netNS, dev string) (int, error) {
	b, err := n.output(ctx, "ip", "-j", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		MTU int `json:"mtu"`
	}
	if err := json.Unmarshal([]byte(b), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("reading %s's MTU in %s from %q: %w", dev, n.name, firstLines(b, 2), err)
	}
	return links[0].MTU, nil
}

// waitPing waits until n pings dst, for at most 30 s.
func waitPing(ctx context.Context, n *netNS, dst string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := n.run(ctx, "ping", "-n", "-q", "-c", "1", "-W", "1", dst)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not ping %s after 30s: %w", n.name, dst, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
