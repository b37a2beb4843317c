package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
	"github.com/calyx-net/calyx/internal/testnet"
)

// node is a running calyx-node with its embedded etcd.
type node struct {
	endpoint string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	dataDir  string
}

// startNode runs calyx-node on free ports and waits until calyxctl can
// read its Node resource.
func startNode(t *testing.T, name string) *node {
	t.Helper()
	testnet.RequireRoot(t)
	n := &node{dataDir: t.TempDir(), log: &bytes.Buffer{}}
	ports := testnet.FreePorts(t, 2)
	cport, pport := ports[0], ports[1]
	n.endpoint = fmt.Sprintf("https://127.0.0.1:%d", cport)
	// calyx-node runs here so that the test reaches its embedded etcd on
	// this loopback, but it programs a namespace of the test's own
	// (--netns): the root namespace's kernel state is never touched.
	hostNS := testnet.NewNS(t)
	n.cmd = exec.Command(bin("calyx-node"), "--name", name, "--ip", "192.0.2.10/24", "--data-dir", n.dataDir,
		"--netns", hostNS.Path(), "--bgp=false", "--docker=false", "--socket", filepath.Join(n.dataDir, "calyx.sock"), "--metrics-addr", "",
		"--etcd-listen-client-url", n.endpoint, "--etcd-listen-peer-url", fmt.Sprintf("https://127.0.0.1:%d", pport))
	n.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.stop(t) })
	testnet.WaitFor(t, "calyx-node to serve its Node resource", func() bool {
		_, _, err := n.ctl("get", "node", name)
		return err == nil
	})
	return n
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if n.cmd.Process == nil || n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("calyx-node exited with %v; log:\n%s", err, n.log)
		}
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		t.Errorf("calyx-node did not stop on SIGTERM (%v after SIGKILL); log:\n%s", <-done, n.log)
	}
}

// ctl runs calyxctl against the node's etcd with a clean environment.
func (n *node) ctl(args ...string) (stdout, stderr string, err error) {
	return runCtl(n.etcdEnv(n.endpoint), "", args...)
}

// ctlIn runs calyxctl with the given standard input.
func (n *node) ctlIn(in string, args ...string) (stdout, stderr string, err error) {
	return runCtl(n.etcdEnv(n.endpoint), in, args...)
}

// etcdConfig is how a client reaches the node's embedded etcd: its client
// certificate from the PKI calyx-node made under its data directory.
func (n *node) etcdConfig() datastore.Config {
	f := pki.Paths(filepath.Join(n.dataDir, pki.DirName))
	return datastore.Config{Endpoints: []string{n.endpoint}, CAFile: f.CACert, CertFile: f.ClientCert, KeyFile: f.ClientKey}
}

// etcdEnv is the CALYX_ETCD_* environment for endpoint with the node's
// client certificate.
func (n *node) etcdEnv(endpoint string) []string {
	c := n.etcdConfig()
	return []string{"CALYX_ETCD_ENDPOINTS=" + endpoint, "CALYX_ETCD_CA_FILE=" + c.CAFile,
		"CALYX_ETCD_CERT_FILE=" + c.CertFile, "CALYX_ETCD_KEY_FILE=" + c.KeyFile}
}

// runCtl runs calyxctl with a clean environment plus env.
func runCtl(env []string, in string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("calyxctl"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustCtl(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out, errOut, err := n.ctl(args...)
	if err != nil {
		t.Fatalf("calyxctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func TestCalyxctlAgainstNode(t *testing.T) {
	n := startNode(t, "e2e-host-1")

	t.Run("node registered", func(t *testing.T) {
		out := mustCtl(t, n, "get", "nodes", "-o", "yaml")
		for _, want := range []string{"name: e2e-host-1", "ipv4Address: 192.0.2.10/24", "apiVersion: calyx.dev/v1"} {
			if !strings.Contains(out, want) {
				t.Errorf("get nodes -o yaml lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("apply examples and read them back", func(t *testing.T) {
		out := mustCtl(t, n, "apply", "-f", "../../examples/")
		for _, want := range []string{"ippool/default-ipv4 created", "globalnetworkpolicy/db-from-api created", "bgppeer/rack1-tor created"} {
			if !strings.Contains(out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, out)
			}
		}
		table := mustCtl(t, n, "get", "pools")
		if !strings.Contains(table, "10.65.0.0/16") || !strings.Contains(table, "fd65:cafe::/48") {
			t.Errorf("get pools:\n%s", table)
		}
		for _, kind := range []string{"IPPool", "ippools", "POOL", "gnp", "GlobalNetworkPolicies", "gns", "profile", "bgppeers", "bgpconfig", "nodeconfig", "ipamconfiguration"} {
			mustCtl(t, n, "get", kind, "-o", "wide")
		}
	})

	t.Run("get -o yaml applies back unchanged", func(t *testing.T) {
		for _, format := range []string{"yaml", "json"} {
			before := mustCtl(t, n, "get", "gnp", "-o", format)
			out, errOut, err := n.ctlIn(before, "apply", "-f", "-")
			if err != nil {
				t.Fatalf("apply of get -o %s output: %v\n%s%s", format, err, out, errOut)
			}
			if strings.Count(out, " unchanged\n") != strings.Count(out, "\n") {
				t.Errorf("apply of get -o %s output printed %q, want every resource unchanged", format, out)
			}
			after := mustCtl(t, n, "get", "gnp", "-o", format)
			if stripVersions(before) != stripVersions(after) {
				t.Errorf("-o %s changed after re-apply:\nbefore:\n%s\nafter:\n%s", format, before, after)
			}
		}
	})

	t.Run("calico v3 manifests", func(t *testing.T) {
		mustCtl(t, n, "apply", "-f", "../../examples/calico-v3/calico-manifests.yaml")
		out := mustCtl(t, n, "get", "ippool", "mesos-pool", "-o", "yaml")
		if !strings.Contains(out, "apiVersion: calyx.dev/v1") || !strings.Contains(out, "vxlanMode: CrossSubnet") {
			t.Errorf("converted pool:\n%s", out)
		}
		out = mustCtl(t, n, "get", "felixconfiguration", "default", "-o", "yaml")
		if !strings.Contains(out, "kind: NodeConfiguration") || !strings.Contains(out, "defaultEndpointToHostAction: Accept") {
			t.Errorf("FelixConfiguration read as NodeConfiguration:\n%s", out)
		}
	})

	t.Run("selector and label", func(t *testing.T) {
		mustCtl(t, n, "label", "gnp", "db-from-api", "tier=data", "team=storage")
		out := mustCtl(t, n, "get", "gnp", "--selector", `tier == "data" && has(team)`)
		if !strings.Contains(out, "db-from-api") || strings.Contains(out, "allow-web") {
			t.Errorf("selector get:\n%s", out)
		}
		if _, errOut, err := n.ctl("label", "gnp", "db-from-api", "tier=other"); err == nil || !strings.Contains(errOut, "--overwrite") {
			t.Errorf("changing a label without --overwrite: err=%v stderr=%s", err, errOut)
		}
		mustCtl(t, n, "label", "gnp", "db-from-api", "--remove", "team")
		out = mustCtl(t, n, "get", "gnp", "db-from-api", "-o", "yaml")
		if strings.Contains(out, "team:") || !strings.Contains(out, "tier: data") {
			t.Errorf("after remove:\n%s", out)
		}
	})

	t.Run("stale replace is a conflict", func(t *testing.T) {
		old := mustCtl(t, n, "get", "ippool", "default-ipv4", "-o", "yaml")
		mustCtl(t, n, "label", "ippool", "default-ipv4", "zone=a")
		out, errOut, err := n.ctlIn(old, "replace", "-f", "-")
		if err == nil {
			t.Fatalf("replace with a stale resourceVersion succeeded: %s", out)
		}
		if !strings.Contains(errOut, "resourceVersion") {
			t.Errorf("stale replace error does not mention the resourceVersion: %s", errOut)
		}
		if cur := mustCtl(t, n, "get", "ippool", "default-ipv4", "-o", "yaml"); !strings.Contains(cur, "zone: a") {
			t.Errorf("stale replace overwrote the newer write:\n%s", cur)
		}
	})

	t.Run("a pool's cidr and blockSize are fixed", func(t *testing.T) {
		for _, spec := range []string{"{cidr: 10.65.0.0/16, blockSize: 28}", "{cidr: 10.64.0.0/16}"} {
			in := "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: default-ipv4}\nspec: " + spec + "\n"
			_, errOut, err := n.ctlIn(in, "apply", "-f", "-")
			if err == nil || !strings.Contains(errOut, "<stdin>: document 1") || !strings.Contains(errOut, "fixed once created") {
				t.Errorf("changing %s: err=%v stderr=%s", spec, err, errOut)
			}
		}
		if out := mustCtl(t, n, "get", "ippool", "default-ipv4", "-o", "yaml"); !strings.Contains(out, "blockSize: 26") {
			t.Errorf("pool changed:\n%s", out)
		}
	})

	t.Run("create of an existing resource writes nothing", func(t *testing.T) {
		in := "apiVersion: calyx.dev/v1\nkind: GlobalNetworkSet\nmetadata: {name: fresh-set}\nspec: {nets: [192.0.2.64/26]}\n---\n" +
			"apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: default-ipv4}\nspec: {cidr: 10.65.0.0/16}\n"
		_, errOut, err := n.ctlIn(in, "create", "-f", "-")
		if err == nil || !strings.Contains(errOut, "default-ipv4") {
			t.Fatalf("create of existing pool: err=%v stderr=%s", err, errOut)
		}
		if _, _, err := n.ctl("get", "gns", "fresh-set"); err == nil {
			t.Errorf("fresh-set was written although the batch failed")
		}
	})

	t.Run("delete", func(t *testing.T) {
		mustCtl(t, n, "delete", "bgppeer", "rack1-tor")
		if _, errOut, err := n.ctl("get", "bgppeer", "rack1-tor"); err == nil || !strings.Contains(errOut, "not found") {
			t.Errorf("get after delete: err=%v stderr=%s", err, errOut)
		}
		if _, errOut, err := n.ctl("delete", "bgppeer", "rack1-tor"); err == nil || !strings.Contains(errOut, "not found") {
			t.Errorf("second delete: err=%v stderr=%s", err, errOut)
		}
		mustCtl(t, n, "delete", "bgppeer", "rack1-tor", "--ignore-not-found")
		mustCtl(t, n, "delete", "-f", "../../examples/40-policy.yaml")
	})

	t.Run("version", func(t *testing.T) {
		out := mustCtl(t, n, "version")
		if !strings.Contains(out, "Client Version") || !strings.Contains(out, "etcd Version:     3.") {
			t.Errorf("version:\n%s", out)
		}
	})
}

// stripVersions drops the lines that legitimately change on a rewrite.
func stripVersions(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "resourceVersion") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
