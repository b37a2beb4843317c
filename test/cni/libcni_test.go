package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// confList loads conf as libcni would from a .conf or a .conflist file.
func confList(t *testing.T, conf map[string]any, list bool) *libcni.NetworkConfigList {
	t.Helper()
	path := writeConf(t, t.TempDir(), conf, list)
	if list {
		l, err := libcni.ConfListFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Single .conf files are what the Mesos isolator reads: keep testing
	// them while libcni still loads them.
	c, err := libcni.ConfFromFile(path) //nolint:staticcheck // SA1019, see above
	if err != nil {
		t.Fatal(err)
	}
	l, err := libcni.ConfListFromConf(c) //nolint:staticcheck // SA1019, see above
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// inHost runs f in the host namespace: libcni runs plugins from the
// calling thread, and a plugin runs in the runtime's namespace.
func (h *host) inHost(t *testing.T, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.ns.Do(func(ns.NetNS) error { return f(ctx) })
}

func TestLibcni(t *testing.T) {
	h := newHost(t)
	for _, v := range allVersions {
		for _, list := range []bool{false, true} {
			format := map[bool]string{false: "conf", true: "conflist"}[list]
			t.Run(v+"/"+format, func(t *testing.T) {
				name := "lc-" + strings.ReplaceAll(v, ".", "") + "-" + format
				l := confList(t, h.calyxConf(v, name, true), list)
				cni := libcni.NewCNIConfigWithCacheDir([]string{binDir, refPlugins}, t.TempDir(), nil)
				ctr := testnet.NewNS(t)
				rt := &libcni.RuntimeConf{ContainerID: "lc-" + strings.ReplaceAll(v, ".", "") + format, NetNS: ctr.Path(), IfName: "eth0"}
				var res types.Result
				if err := h.inHost(t, func(ctx context.Context) error {
					if _, err := cni.ValidateNetworkList(ctx, l); err != nil {
						return err
					}
					var err error
					res, err = cni.AddNetworkList(ctx, l, rt)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				if err := res.PrintTo(&b); err != nil {
					t.Fatal(err)
				}
				r := parseResult(t, v, b.Bytes())
				if n := len(r.IPs); n != 2 {
					t.Errorf("want an IPv4 and an IPv6 address, got %v", r.IPs)
				}
				if got := addrs(t, ctr); len(got) != 2 {
					t.Errorf("eth0 has %v", got)
				}
				if err := h.inHost(t, func(ctx context.Context) error {
					if atLeast(v, "0.4.0") {
						if err := cni.CheckNetworkList(ctx, l, rt); err != nil {
							return err
						}
					}
					if atLeast(v, "1.1.0") {
						if err := cni.GetStatusNetworkList(ctx, l); err != nil {
							return err
						}
					}
					if err := cni.DelNetworkList(ctx, l, rt); err != nil {
						return err
					}
					// Again, now without a cached result.
					return cni.DelNetworkList(ctx, l, rt)
				}); err != nil {
					t.Fatal(err)
				}
				if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
					t.Errorf("left in the container after DEL: %v", l)
				}
			})
		}
	}
}

// TestGC attaches three containers, then GCs with one valid attachment:
// calyx must release the other two. libcni's GC first DELs the cached
// attachments that are not valid, so the GC runs with an empty cache: only
// the plugin's own GC can release them.
func TestGC(t *testing.T) {
	h := newHost(t)
	l := confList(t, h.calyxConf("1.1.0", "gc-net", false), true)
	addCNI := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	ids := []string{"gc-keep", "gc-drop-1", "gc-drop-2"}
	var ips []string
	for _, id := range ids {
		ctr := testnet.NewNS(t)
		if err := h.inHost(t, func(ctx context.Context) error {
			res, err := addCNI.AddNetworkList(ctx, l, &libcni.RuntimeConf{ContainerID: id, NetNS: ctr.Path(), IfName: "eth0"})
			if err == nil {
				ips = append(ips, firstIP(t, res, true))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	gcCNI := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	if err := h.inHost(t, func(ctx context.Context) error {
		return gcCNI.GCNetworkList(ctx, l, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "gc-keep", IfName: "eth0"}}})
	}); err != nil {
		t.Fatal(err)
	}
	weps := h.weps(t)
	if !strings.Contains(weps, "gc-keep") || strings.Contains(weps, "gc-drop") {
		t.Errorf("after GC keeping gc-keep:\n%s", weps)
	}
	for i, ip := range ips {
		out := h.ctl(t, "", "ipam", "show", "--ip", ip)
		if released := strings.Contains(out, "not assigned"); released != (i > 0) {
			t.Errorf("%s of %s after GC:\n%s", ip, ids[i], out)
		}
	}
}

// TestDuplicateAdd: a second ADD of the same container and interface gets
// an error, and leaves the first attachment working.
func TestDuplicateAdd(t *testing.T) {
	h := newHost(t)
	l := confList(t, h.calyxConf("1.0.0", "dup-net", false), true)
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	ctr := testnet.NewNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "dup", NetNS: ctr.Path(), IfName: "eth0"}
	if err := h.inHost(t, func(ctx context.Context) error { _, err := cni.AddNetworkList(ctx, l, rt); return err }); err != nil {
		t.Fatal(err)
	}
	before := addrs(t, ctr)
	err := h.inHost(t, func(ctx context.Context) error { _, err := cni.AddNetworkList(ctx, l, rt); return err })
	if err == nil || !strings.Contains(err.Error(), "interface eth0 already exists") {
		t.Fatalf("second ADD: %v", err)
	}
	if err := h.inHost(t, func(ctx context.Context) error { return cni.CheckNetworkList(ctx, l, rt) }); err != nil {
		t.Errorf("CHECK after the refused second ADD: %v", err)
	}
	if after := addrs(t, ctr); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("addresses changed: %v -> %v", before, after)
	}
}

// TestUnreachable runs calyx with no calyx-node behind its socket: a clear
// CNI error, a non-zero exit, and nothing left in the container.
func TestUnreachable(t *testing.T) {
	testnet.RequireRoot(t)
	hostNS, ctr := testnet.NewNS(t), testnet.NewNS(t)
	sock := filepath.Join(t.TempDir(), "calyx.sock")
	conf, _ := json.Marshal(map[string]any{"cniVersion": "0.2.0", "name": "calyx", "type": "calyx",
		"ipam": map[string]any{"type": "calyx-ipam"}, "agent_socket": sock})
	for _, plugin := range []string{"calyx", "calyx-ipam"} {
		cmd := exec.Command(filepath.Join(binDir, plugin))
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=unreach", "CNI_NETNS=" + ctr.Path(), "CNI_IFNAME=eth0",
			"CNI_PATH=" + binDir, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = bytes.NewReader(conf)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := hostnode.RunIn(hostNS, cmd)
		if err == nil {
			t.Fatalf("%s ADD succeeded with no calyx-node: %s", plugin, out.String())
		}
		var e types.Error
		if jerr := json.Unmarshal(out.Bytes(), &e); jerr != nil {
			t.Fatalf("%s: stdout is not a CNI error: %v\n%s", plugin, jerr, out.String())
		}
		if e.Code != types.ErrTryAgainLater || !strings.Contains(e.Msg, "cannot reach calyx-node at "+sock) || !strings.Contains(e.Msg, "systemctl start calyx-node") {
			t.Errorf("%s: error %+v", plugin, e)
		}
	}
	if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
		t.Errorf("left in the container: %v", l)
	}
	if l := testnet.Links(t, hostNS); len(l) != 0 {
		t.Errorf("left in the host: %v", l)
	}
}

// TestRequestedIP asks for an address with CNI_ARGS IP=, as Calico users
// did to pin a task's address.
func TestRequestedIP(t *testing.T) {
	h := newHost(t)
	l := confList(t, h.calyxConf("0.4.0", "ip-net", false), true)
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	ctr := testnet.NewNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "pinned", NetNS: ctr.Path(), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"IP", "10.66.200.7"}, {"K8S_POD_NAME", "ignored"}}}
	if err := h.inHost(t, func(ctx context.Context) error {
		res, err := cni.AddNetworkList(ctx, l, rt)
		if err != nil {
			return err
		}
		if ip := firstIP(t, res, true); ip != "10.66.200.7" {
			t.Errorf("got %s, asked for 10.66.200.7", ip)
		}
		return cni.DelNetworkList(ctx, l, rt)
	}); err != nil {
		t.Fatal(err)
	}
	// An unknown key without IgnoreUnknown is refused, naming it.
	rt.Args = [][2]string{{"FOO", "bar"}}
	err := h.inHost(t, func(ctx context.Context) error { _, err := cni.AddNetworkList(ctx, l, rt); return err })
	if err == nil || !strings.Contains(err.Error(), "CNI_ARGS: unknown FOO=bar") {
		t.Errorf("ADD with an unknown CNI_ARGS key: %v", err)
	}
	if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
		t.Errorf("left in the container: %v", l)
	}
}
