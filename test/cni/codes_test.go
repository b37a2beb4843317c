package cni

import (
	"fmt"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/testnet"
)

// TestErrorCodes runs the plugin binaries into each failure with a CNI
// code of its own: each must print one error object with that code, and
// leave nothing behind in the container.
func TestErrorCodes(t *testing.T) {
	h := newHost(t)
	base := h.calyxConf("1.0.0", "codes-net", false)
	with := func(ipam map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		i := map[string]any{"type": "calyx-ipam"}
		for k, v := range ipam {
			i[k] = v
		}
		c["ipam"] = i
		return c
	}
	holder := testnet.NewNS(t)
	if out, stderr, err := h.runPlugin(t, "calyx", "ADD", "holder", holder, base, "CNI_ARGS=IP=10.66.0.50"); err != nil {
		t.Fatalf("ADD: %v\n%s\n%s", err, out, stderr)
	}
	t.Cleanup(func() { _, _, _ = h.runPlugin(t, "calyx", "DEL", "holder", holder, base) })

	manyPools := make([]string, 120000)
	for i := range manyPools {
		manyPools[i] = fmt.Sprintf("pool-%06d", i)
	}
	for _, tc := range []struct {
		name string
		conf map[string]any
		env  []string
		code uint
		msg  string
	}{
		{"missing pool", with(map[string]any{"ipv4_pools": []string{"no-such-pool"}}), nil,
			localapi.CodeInvalidNetworkConfig, `IP pool "no-such-pool" does not exist`},
		{"address in use", base, []string{"CNI_ARGS=IP=10.66.0.50"}, localapi.CodeAddressInUse, "address 10.66.0.50 is already assigned"},
		{"address outside the pools", base, []string{"CNI_ARGS=IP=198.51.100.7"}, localapi.CodeAddressNotInPool, "198.51.100.7 is outside every IP pool"},
		{"two IPv4 addresses", base, []string{"CNI_ARGS=IP=10.66.0.51,10.66.0.52"}, localapi.CodeInvalidEnvironment, "at most one of each"},
		{"request too large", with(map[string]any{"ipv4_pools": manyPools}), nil, localapi.CodeInvalidNetworkConfig, "more than calyx-node accepts"},
	} {
		for _, plugin := range []string{"calyx", "calyx-ipam"} {
			t.Run(tc.name+"/"+plugin, func(t *testing.T) {
				ctr := testnet.NewNS(t)
				out, stderr, err := h.runPlugin(t, plugin, "ADD", "codes", ctr, tc.conf, tc.env...)
				if err == nil {
					t.Fatalf("ADD succeeded: %s", out)
				}
				e := oneError(t, out)
				if e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
					t.Errorf("error code %d %q, want code %d containing %q\nstderr: %s", e.Code, e.Msg, tc.code, tc.msg, stderr)
				}
				if l := testnet.LinksAfterDel(t, ctr); len(l) != 0 {
					t.Errorf("left in the container: %v", l)
				}
			})
		}
	}
	t.Run("interface exists", func(t *testing.T) {
		out, _, err := h.runPlugin(t, "calyx", "ADD", "holder", holder, base)
		if err == nil {
			t.Fatalf("second ADD succeeded: %s", out)
		}
		if e := oneError(t, out); e.Code != localapi.CodeAttachmentExists || !strings.Contains(e.Msg, "interface eth0 already exists") {
			t.Errorf("error %+v", e)
		}
	})
}
