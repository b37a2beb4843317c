package ipam

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/selector"
)

func testPool(t *testing.T, name, cidr string, bits int, sel string) *pool {
	t.Helper()
	p := &pool{name: name, geo: mustGeo(t, cidr, bits), workload: true, key: "/calyx/v1/ippool/" + name}
	if sel != "" {
		p.sel = selector.MustParse(sel)
	}
	return p
}

func names(ps []*pool) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

func TestSelectPools(t *testing.T) {
	a := testPool(t, "a", "10.1.0.0/16", 26, "")
	b := testPool(t, "b", "10.2.0.0/16", 26, `rack == "r1"`)
	off := testPool(t, "off", "10.3.0.0/16", 26, "")
	off.disabled = true
	tun := testPool(t, "tun", "10.4.0.0/16", 26, "")
	tun.workload, tun.tunnel = false, true
	a.tunnel = true
	six := testPool(t, "six", "fd00::/48", 122, "")
	pools := []*pool{a, b, off, tun, six}

	sel, err := selectPools(pools, map[string]string{"rack": "r1"}, api.IPPoolUseWorkload, nil, nil)
	if err != nil || !slices.Equal(names(sel.v4), []string{"a", "b"}) || !slices.Equal(names(sel.v6), []string{"six"}) || !sel.byLabels {
		t.Errorf("rack r1: %v %v %v %v", names(sel.v4), names(sel.v6), sel.byLabels, err)
	}
	sel, _ = selectPools(pools, nil, api.IPPoolUseWorkload, nil, nil)
	if !slices.Equal(names(sel.v4), []string{"a"}) {
		t.Errorf("no labels: %v", names(sel.v4))
	}
	// Requested pools bypass the node selector but not the other rules.
	sel, err = selectPools(pools, nil, api.IPPoolUseWorkload, []string{"b", "10.1.0.0/16"}, nil)
	if err != nil || !slices.Equal(names(sel.v4), []string{"b", "a"}) {
		t.Errorf("requested: %v %v", names(sel.v4), err)
	}
	for _, req := range []struct {
		v4, v6 []string
		pred   func(error) bool
	}{
		{[]string{"off"}, nil, IsPoolDisabled},
		{[]string{"nope"}, nil, IsPoolNotFound},
		{[]string{"tun"}, nil, IsInvalid},
		{[]string{"six"}, nil, IsInvalid},
		{nil, []string{"a"}, IsInvalid},
	} {
		if _, err := selectPools(pools, nil, api.IPPoolUseWorkload, req.v4, req.v6); !req.pred(err) {
			t.Errorf("selectPools(%v, %v): %v", req.v4, req.v6, err)
		}
	}
	// A tunnel address comes only from pools allowing the Tunnel use.
	sel, err = selectPools(pools, nil, api.IPPoolUseTunnel, nil, nil)
	if err != nil || !slices.Equal(names(sel.v4), []string{"a", "tun"}) || len(sel.v6) != 0 {
		t.Errorf("tunnel: %v %v %v", names(sel.v4), names(sel.v6), err)
	}
	if _, err := selectPools(pools, nil, api.IPPoolUseTunnel, []string{"b"}, nil); !IsInvalid(err) {
		t.Errorf("tunnel from a workload-only pool: %v", err)
	}
	if p := poolFor(pools, netip.MustParseAddr("10.2.3.4")); p != b {
		t.Errorf("poolFor: %v", p)
	}
}
