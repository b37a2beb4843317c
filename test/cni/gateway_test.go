package cni

import (
	"encoding/json"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestHostWithoutDefaultRoute attaches two containers to one host through
// the calyx binary and pings between them over IPv4 and IPv6, on a host
// with a default route and on one without (an air-gapped host). Without
// one the host's proxy ARP does not answer for 169.254.1.1, so the
// containers must not need it: their gateway entries are permanent. CHECK
// must pass on both.
func TestHostWithoutDefaultRoute(t *testing.T) {
	for _, tc := range []struct {
		name         string
		defaultRoute bool
	}{{"with-default-route", true}, {"without-default-route", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			if !tc.defaultRoute {
				deleteDefaultRoutes(t, h.ns)
			}
			conf := h.calyxConf("1.0.0", "gw-net", true)
			a, b := testnet.NewNS(t), testnet.NewNS(t)
			ip := map[ns.NetNS][2]string{}
			results := map[ns.NetNS]string{}
			for i, c := range []ns.NetNS{a, b} {
				id := []string{"gw-a", "gw-b"}[i]
				out, stderr, err := h.runPlugin(t, "calyx", "ADD", id, c, conf)
				if err != nil {
					t.Fatalf("ADD %s: %v\nstdout: %s\nstderr: %s", id, err, out, stderr)
				}
				r := parseResult(t, "1.0.0", []byte(out))
				ip[c] = [2]string{firstIP(t, r, true), firstIP(t, r, false)}
				results[c] = out
				t.Cleanup(func() {
					if out, stderr, err := h.runPlugin(t, "calyx", "DEL", id, c, conf); err != nil {
						t.Errorf("DEL %s: %v\n%s\n%s", id, err, out, stderr)
					}
				})
			}
			t.Run("ipv4", func(t *testing.T) {
				ping(t, a, ip[b][0])
				ping(t, b, ip[a][0])
			})
			t.Run("ipv6", func(t *testing.T) {
				ping(t, a, ip[b][1])
				ping(t, b, ip[a][1])
			})
			for i, c := range []ns.NetNS{a, b} {
				id := []string{"gw-a", "gw-b"}[i]
				check := map[string]any{"prevResult": json.RawMessage(results[c])}
				for k, v := range conf {
					check[k] = v
				}
				if out, stderr, err := h.runPlugin(t, "calyx", "CHECK", id, c, check); err != nil {
					t.Errorf("CHECK %s: %v\n%s\n%s", id, err, out, stderr)
				}
			}
		})
	}
}

// deleteDefaultRoutes removes every IPv4 and IPv6 default route in netns
// (a test namespace standing for a host).
func deleteDefaultRoutes(t *testing.T, netns ns.NetNS) {
	t.Helper()
	if err := netns.Do(func(ns.NetNS) error {
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := netlink.RouteList(nil, fam)
			if err != nil {
				return err
			}
			for _, r := range routes {
				if r.Dst == nil || r.Dst.IP.IsUnspecified() {
					if ones, _ := maskOnes(r); ones == 0 {
						if err := netlink.RouteDel(&r); err != nil {
							return err
						}
					}
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func maskOnes(r netlink.Route) (int, int) {
	if r.Dst == nil {
		return 0, 0
	}
	return r.Dst.Mask.Size()
}
