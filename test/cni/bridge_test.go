package cni

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestCalyxIPAMUnderBridge runs Debian's bridge plugin with calyx-ipam as
// its IPAM: two containers on one bridge, addresses from the Calyx pool
// with the pool's prefix length, pinging each other.
func TestCalyxIPAMUnderBridge(t *testing.T) {
	h := newHost(t)
	conf := map[string]any{"cniVersion": "1.0.0", "name": "br-calyx", "type": "bridge", "bridge": "cbr0",
		"isGateway": false, "ipam": map[string]any{"type": "calyx-ipam", "agent_socket": h.node.Socket()}}
	l := confList(t, conf, true)
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir, refPlugins}, t.TempDir(), nil)
	var ctrs []ns.NetNS
	var ips []string
	for _, id := range []string{"br-a", "br-b"} {
		ctr := testnet.NewNS(t)
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: ctr.Path(), IfName: "eth0"}
		if err := h.inHost(t, func(ctx context.Context) error {
			res, err := cni.AddNetworkList(ctx, l, rt)
			if err != nil {
				return err
			}
			ip := firstIP(t, res, true)
			if !strings.HasPrefix(ip, "10.66.") {
				t.Errorf("%s got %s, not from the Calyx pool", id, ip)
			}
			ips = append(ips, ip)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := addrs(t, ctr); len(got) != 1 || !strings.HasSuffix(got[0], "/16") {
			t.Errorf("%s eth0 has %v, want one address with the pool's /16", id, got)
		}
		ctrs = append(ctrs, ctr)
		if id == "br-a" {
			// CHECK before a second port joins the bridge: bridge 1.1.1's
			// own CHECK compares the bridge's MAC with the one at ADD, and
			// a bridge takes the lowest MAC of its ports.
			if err := h.inHost(t, func(ctx context.Context) error { return cni.CheckNetworkList(ctx, l, rt) }); err != nil {
				t.Errorf("CHECK: %v", err)
			}
		}
		t.Cleanup(func() {
			_ = h.inHost(t, func(ctx context.Context) error { return cni.DelNetworkList(ctx, l, rt) })
		})
	}
	if net.ParseIP(ips[0]).Equal(net.ParseIP(ips[1])) {
		t.Fatalf("both containers got %s", ips[0])
	}
	ping(t, ctrs[0], ips[1])
	ping(t, ctrs[1], ips[0])
	if err := h.inHost(t, func(ctx context.Context) error {
		return cni.DelNetworkList(ctx, l, &libcni.RuntimeConf{ContainerID: "br-a", NetNS: ctrs[0].Path(), IfName: "eth0"})
	}); err != nil {
		t.Fatal(err)
	}
	if out := h.ctl(t, "", "ipam", "show", "--ip", ips[0]); !strings.Contains(out, "not assigned") {
		t.Errorf("%s still assigned after DEL:\n%s", ips[0], out)
	}
}
