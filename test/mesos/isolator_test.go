package mesos

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

const pools = `apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: mesos-ipv4}
spec: {cidr: 10.67.0.0/16, blockSize: 26}
`

// agent is a Mesos agent's host: calyx-node in a namespace, the plugins
// dir holding calyx and calyx-ipam, and the config dir holding the shipped
// deploy/cni/calyx.conf (pointed at this calyx-node's socket) plus any
// networks a test adds.
type agent struct {
	node *hostnode.Node
	iso  *Isolator
}

func newAgent(t *testing.T) *agent {
	t.Helper()
	a := startAgent(t, hostnode.Config{Name: "agent-1"})
	a.apply(t, pools)
	return a
}

// startAgent starts calyx-node as cfg says (in a new namespace when
// cfg.NS is nil) with the Mesos isolator beside it and network "calyx"
// configured.
func startAgent(t *testing.T, cfg hostnode.Config) *agent {
	t.Helper()
	testnet.RequireRoot(t)
	if cfg.NS == nil {
		cfg.NS = testnet.NewNS(t)
	}
	hostNS := cfg.NS
	// Not t.TempDir(): calyx-node's socket goes here, and unix socket
	// paths are limited to 108 bytes.
	work, err := os.MkdirTemp("", "calyx-") //nolint:usetesting // see above
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg.BinDir, cfg.WorkDir = binDir, work
	node, err := hostnode.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{node: node}
	t.Cleanup(func() {
		if err := a.node.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("calyx-node %s log:\n%s", cfg.Name, a.node.Log())
		}
	})
	plugins, confs, root := t.TempDir(), t.TempDir(), t.TempDir()
	for _, p := range []string{"calyx", "calyx-ipam"} {
		if err := os.Symlink(filepath.Join(binDir, p), filepath.Join(plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	a.iso = &Isolator{PluginsDir: plugins, ConfigDir: confs, RootDir: root,
		Path: "/usr/sbin:/usr/bin:/sbin:/bin", Start: func(cmd *exec.Cmd) error { return hostnode.StartIn(hostNS, cmd) }}
	a.addNetwork(t, "calyx", nil)
	t.Cleanup(func() {
		// Unmount whatever a failed test left mounted.
		dirs, _ := filepath.Glob(filepath.Join(root, "*"))
		for _, d := range dirs {
			_ = a.iso.ForgetNamespace(filepath.Base(d))
		}
	})
	return a
}

// addNetwork writes the shipped config as network name, pointed at this
// calyx-node, with extra keys merged into its ipam section.
func (a *agent) addNetwork(t *testing.T, name string, ipam map[string]any) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/cni/calyx.conf")
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatalf("deploy/cni/calyx.conf: %v", err)
	}
	conf["name"] = name
	conf["agent_socket"] = a.node.Socket()
	for k, v := range ipam {
		conf["ipam"].(map[string]any)[k] = v
	}
	out, _ := json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(filepath.Join(a.iso.ConfigDir, name+".conf"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// endpoints returns the WorkloadEndpoints as JSON objects.
func (a *agent) endpoints(t *testing.T) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := a.node.Ctl(ctx, "", "get", "wep", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("get wep -o json: %v\n%s", err, out)
	}
	if items, ok := doc["items"].([]any); ok {
		var ws []map[string]any
		for _, it := range items {
			ws = append(ws, it.(map[string]any))
		}
		return ws
	}
	if doc["kind"] == "WorkloadEndpoint" {
		return []map[string]any{doc}
	}
	return nil
}

// endpointOf finds the endpoint of a container interface.
func (a *agent) endpointOf(t *testing.T, cid, ifName string) map[string]any {
	t.Helper()
	for _, w := range a.endpoints(t) {
		spec := w["spec"].(map[string]any)
		if spec["containerID"] == cid && spec["endpoint"] == ifName || spec["containerID"] == cid && ifName == "" {
			return w
		}
	}
	return nil
}

func (a *agent) ctl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := a.node.Ctl(ctx, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uuid is a Mesos ContainerID.
func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func TestMesosTask(t *testing.T) {
	a := newAgent(t)
	ctr := testnet.NewNS(t)
	cid := uuid()
	info := NetworkInfo{Name: "calyx",
		Labels:       &Labels{Labels: []Label{{Key: "app", Value: "frontend"}, {Key: "mesos.apache.org/role", Value: "web server"}, {Key: "_hidden", Value: "x"}, {Key: "group", Value: "prod"}}},
		PortMappings: []PortMapping{{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"}},
		IPAddresses:  []IPAddress{{Protocol: "IPv4"}}}
	results, err := a.iso.Attach(t.Context(), cid, ctr.Path(), []NetworkInfo{info})
	if err != nil {
		t.Fatal(err)
	}
	r := results["calyx"]
	if r == nil || r.IP4 == nil || !strings.HasPrefix(r.IP4.IP, "10.67.") || !strings.HasSuffix(r.IP4.IP, "/32") || r.IP4.Gateway != "169.254.1.1" {
		t.Fatalf("Mesos read %+v", r)
	}
	if saved, err := os.ReadFile(filepath.Join(a.iso.RootDir, cid, "calyx", "eth0", "network.info")); err != nil || !strings.Contains(string(saved), r.IP4.IP) {
		t.Errorf("network.info: %s %v", saved, err)
	}
	w := a.endpointOf(t, cid, "eth0")
	if w == nil {
		t.Fatalf("no endpoint for container %s:\n%s", cid, a.ctl(t, "get", "wep", "-o", "yaml"))
	}
	labels, _ := w["metadata"].(map[string]any)["labels"].(map[string]any)
	for k, v := range map[string]string{"app": "frontend", "mesos.apache.org.role": "web-server", "group": "prod"} {
		if labels[k] != v {
			t.Errorf("endpoint label %s = %v, want %q (labels %v)", k, labels[k], v, labels)
		}
	}
	if _, ok := labels["_hidden"]; ok {
		t.Errorf("invalid label _hidden reached the endpoint: %v", labels)
	}
	spec := w["spec"].(map[string]any)
	if spec["orchestrator"] != "mesos" || !strings.Contains(fmt.Sprint(spec["profiles"]), "calyx") {
		t.Errorf("endpoint spec %v", spec)
	}
	if out := a.ctl(t, "get", "profile", "calyx", "-o", "yaml"); !strings.Contains(out, "name: calyx") {
		t.Errorf("profile of the network:\n%s", out)
	}
	if wide := a.ctl(t, "get", "wep", "-o", "wide"); !strings.Contains(wide, strings.TrimSuffix(r.IP4.IP, "/32")) {
		t.Errorf("get wep -o wide does not show the address:\n%s", wide)
	}

	if err := a.iso.Detach(t.Context(), cid); err != nil {
		t.Fatal(err)
	}
	if w := a.endpointOf(t, cid, ""); w != nil {
		t.Errorf("endpoint survived DEL: %v", w)
	}
	if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
		t.Errorf("left in the container: %v", l)
	}
	if out := a.ctl(t, "ipam", "show", "--ip", strings.TrimSuffix(r.IP4.IP, "/32")); !strings.Contains(out, "not assigned") {
		t.Errorf("address not released:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(a.iso.RootDir, cid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container dir left: %v", err)
	}
}

// TestMesosDelWithoutNetns: after a reboot with
// --network_cni_root_dir_persist, DEL comes with the saved stdin and no
// CNI_NETNS.
func TestMesosDelWithoutNetns(t *testing.T) {
	a := newAgent(t)
	ctr := testnet.NewNS(t)
	cid := uuid()
	results, err := a.iso.Attach(t.Context(), cid, ctr.Path(), []NetworkInfo{{Name: "calyx"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.iso.ForgetNamespace(cid); err != nil {
		t.Fatal(err)
	}
	if err := a.iso.Detach(t.Context(), cid); err != nil {
		t.Fatal(err)
	}
	if w := a.endpointOf(t, cid, ""); w != nil {
		t.Errorf("endpoint survived DEL: %v", w)
	}
	ip := strings.TrimSuffix(results["calyx"].IP4.IP, "/32")
	if out := a.ctl(t, "ipam", "show", "--ip", ip); !strings.Contains(out, "not assigned") {
		t.Errorf("address not released:\n%s", out)
	}
}

// TestMesosFailedAdd: a failed ADD (a pool that does not exist; a bad
// config value) is followed by DEL with the same saved stdin, which must
// succeed and leave nothing.
func TestMesosFailedAdd(t *testing.T) {
	a := newAgent(t)
	a.addNetwork(t, "nopool", map[string]any{"ipv4_pools": []string{"192.0.2.0/24"}})
	a.addNetwork(t, "badconf", map[string]any{"assign_ipv4": "maybe"})
	for _, tc := range []struct{ net, msg string }{
		{"nopool", "192.0.2.0/24"},
		{"badconf", `config key \"ipam.assign_ipv4\": expected \"true\", \"false\" or a JSON boolean, got \"maybe\"`},
	} {
		t.Run(tc.net, func(t *testing.T) {
			ctr := testnet.NewNS(t)
			cid := uuid()
			_, err := a.iso.Attach(t.Context(), cid, ctr.Path(), []NetworkInfo{{Name: tc.net}})
			var pe *PluginError
			if !errors.As(err, &pe) || !strings.Contains(pe.Stdout, tc.msg) {
				t.Fatalf("ADD: %v, want a plugin error whose stdout says %s", err, tc.msg)
			}
			if err := a.iso.Detach(t.Context(), cid); err != nil {
				t.Fatalf("DEL after a failed ADD: %v", err)
			}
			if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
				t.Errorf("left in the container: %v", l)
			}
			if w := a.endpointOf(t, cid, ""); w != nil {
				t.Errorf("endpoint of a failed ADD: %v", w)
			}
		})
	}
}

// TestMesosDelWithoutAdd: the agent died after saving network.conf and
// before the ADD ran; recovery calls DEL.
func TestMesosDelWithoutAdd(t *testing.T) {
	a := newAgent(t)
	cid := uuid()
	conf, err := os.ReadFile(filepath.Join(a.iso.ConfigDir, "calyx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(conf, &m)
	m["args"] = map[string]any{"org.apache.mesos": map[string]any{"network_info": NetworkInfo{Name: "calyx"}}}
	stdin, _ := json.Marshal(m)
	if err := a.iso.SaveOnly(cid, "eth0", NetworkInfo{Name: "calyx"}, stdin); err != nil {
		t.Fatal(err)
	}
	if err := a.iso.Detach(t.Context(), cid); err != nil {
		t.Fatalf("DEL with no ADD: %v", err)
	}
}

// TestMesosTwoNetworks: a task on two networks gets eth0 and eth1, ADDed
// in parallel.
func TestMesosTwoNetworks(t *testing.T) {
	a := newAgent(t)
	a.addNetwork(t, "net-a", nil)
	a.addNetwork(t, "net-b", nil)
	ctr := testnet.NewNS(t)
	cid := uuid()
	infos := []NetworkInfo{
		{Name: "net-a", Labels: &Labels{Labels: []Label{{Key: "tier", Value: "web"}}}},
		{Name: "net-b", Labels: &Labels{Labels: []Label{{Key: "tier", Value: "db"}}}},
	}
	results, err := a.iso.Attach(t.Context(), cid, ctr.Path(), infos)
	if err != nil {
		t.Fatal(err)
	}
	ipA, ipB := results["net-a"].IP4.IP, results["net-b"].IP4.IP
	if ipA == ipB {
		t.Errorf("both networks gave %s", ipA)
	}
	if l := strings.Join(testnet.Links(t, ctr), ","); l != "eth0,eth1" && l != "eth1,eth0" {
		t.Errorf("container links %q, want eth0 and eth1", l)
	}
	// The first network's interface carries the default route; the
	// second holds a backup at a higher metric.
	var defaults []string
	_ = ctr.Do(func(ns.NetNS) error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Gw != nil {
				l, _ := netlink.LinkByIndex(r.LinkIndex)
				defaults = append(defaults, fmt.Sprintf("%s metric %d", l.Attrs().Name, r.Priority))
			}
		}
		return err
	})
	if d := strings.Join(defaults, ", "); d != "eth0 metric 0, eth1 metric 1" {
		t.Errorf("default routes: %s", d)
	}
	for ifName, want := range map[string]string{"eth0": "web", "eth1": "db"} {
		w := a.endpointOf(t, cid, ifName)
		if w == nil {
			t.Fatalf("no endpoint for %s", ifName)
		}
		labels := w["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["tier"] != want {
			t.Errorf("%s labels %v, want tier=%s", ifName, labels, want)
		}
	}
	for _, p := range []string{"net-a", "net-b"} {
		a.ctl(t, "get", "profile", p)
	}
	if err := a.iso.Detach(t.Context(), cid); err != nil {
		t.Fatal(err)
	}
	if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
		t.Errorf("left in the container: %v", l)
	}
	if w := a.endpointOf(t, cid, ""); w != nil {
		t.Errorf("endpoint survived DEL: %v", w)
	}
}
