package api

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateIPPool(t *testing.T) {
	runValidateCases(t, []validateCase{
		{name: "minimal v4", r: testPool(nil)},
		{name: "minimal v6", r: testPool6(nil)},
		{name: "cidr missing", r: testPool(func(p *IPPool) { p.Spec.CIDR = "" }), path: "spec.cidr", msg: "must be set"},
		{name: "cidr bad prefix", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/33" }), path: "spec.cidr", msg: `"10.0.0.0/33" is not a valid CIDR`},
		{name: "cidr bare ip", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.0" }), path: "spec.cidr", msg: "not a valid CIDR"},
		{name: "cidr host bits", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.1/16" }), path: "spec.cidr",
			msg: "10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?"},
		{name: "cidr v6 host bits", r: testPool6(func(p *IPPool) { p.Spec.CIDR = "fd00::1/64" }), path: "spec.cidr", msg: "did you mean fd00::/64?"},
		{name: "cidr link-local", r: testPool(func(p *IPPool) { p.Spec.CIDR = "169.254.0.0/16" }), path: "spec.cidr", msg: "link-local"},
		{name: "cidr covers link-local", r: testPool(func(p *IPPool) { p.Spec.CIDR = "128.0.0.0/1"; p.Spec.BlockSize = 26 }), path: "spec.cidr", msg: "link-local"},
		{name: "cidr v6 link-local", r: testPool6(func(p *IPPool) { p.Spec.CIDR = "fe80::/64" }), path: "spec.cidr", msg: "link-local"},
		{name: "cidr multicast", r: testPool(func(p *IPPool) { p.Spec.CIDR = "239.0.0.0/8" }), path: "spec.cidr", msg: "multicast"},
		{name: "blocksize 20", r: testPool(func(p *IPPool) { p.Spec.BlockSize = 20 })},
		{name: "blocksize 32", r: testPool(func(p *IPPool) { p.Spec.BlockSize = 32 })},
		{name: "blocksize 19", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/8"; p.Spec.BlockSize = 19 }), path: "spec.blockSize", msg: "must be 20-32"},
		{name: "blocksize 33", r: testPool(func(p *IPPool) { p.Spec.BlockSize = 33 }), path: "spec.blockSize", msg: "must be 20-32"},
		{name: "blocksize v6 116", r: testPool6(func(p *IPPool) { p.Spec.BlockSize = 116 })},
		{name: "blocksize v6 115", r: testPool6(func(p *IPPool) { p.Spec.BlockSize = 115 }), path: "spec.blockSize", msg: "must be 116-128"},
		{name: "blocksize v6 given v4 size", r: testPool6(func(p *IPPool) { p.Spec.BlockSize = 26 }), path: "spec.blockSize", msg: "must be 116-128"},
		{name: "block equals pool", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/26"; p.Spec.BlockSize = 26 })},
		{name: "block larger than pool", r: testPool(func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/28" }), path: "spec.blockSize",
			msg: "26 is larger than the pool (/28): must be at least 28"},
		{name: "vxlan always", r: testPool(func(p *IPPool) { p.Spec.VXLANMode = EncapAlways })},
		{name: "ipip cross-subnet lower case", r: testPool(func(p *IPPool) { p.Spec.IPIPMode = "crosssubnet" })},
		{name: "vxlan bad", r: testPool(func(p *IPPool) { p.Spec.VXLANMode = "Sometimes" }), path: "spec.vxlanMode", msg: "must be one of Never, Always, CrossSubnet"},
		{name: "ipip bad", r: testPool(func(p *IPPool) { p.Spec.IPIPMode = "On" }), path: "spec.ipipMode", msg: "must be one of Never, Always, CrossSubnet"},
		{name: "both encaps", r: testPool(func(p *IPPool) { p.Spec.IPIPMode = EncapAlways; p.Spec.VXLANMode = EncapCrossSubnet }),
			path: "spec.ipipMode", msg: "one encapsulation at most"},
		{name: "ipip on v6", r: testPool6(func(p *IPPool) { p.Spec.IPIPMode = EncapAlways }), path: "spec.ipipMode", msg: "only for IPv4"},
		{name: "vxlan on v6", r: testPool6(func(p *IPPool) { p.Spec.VXLANMode = EncapAlways })},
		{name: "node selector", r: testPool(func(p *IPPool) { p.Spec.NodeSelector = "rack in {'r1', 'r2'}" })},
		{name: "node selector bad", r: testPool(func(p *IPPool) { p.Spec.NodeSelector = "rack = 'r1'" }), path: "spec.nodeSelector", msg: "invalid selector"},
		{name: "allowed uses workload only", r: testPool(func(p *IPPool) { p.Spec.AllowedUses = []string{"Workload"} })},
		{name: "allowed uses bad", r: testPool(func(p *IPPool) { p.Spec.AllowedUses = []string{"Workload", "LoadBalancer"} }),
			path: "spec.allowedUses[1]", msg: "must be one of Workload, Tunnel"},
		{name: "allowed uses duplicate", r: testPool(func(p *IPPool) { p.Spec.AllowedUses = []string{"Tunnel", "tunnel"} }),
			path: "spec.allowedUses[1]", msg: "listed twice"},
	})
}

func TestValidatePools(t *testing.T) {
	pool := func(name, cidr string) *IPPool {
		return &IPPool{Metadata: ObjectMeta{Name: name}, Spec: IPPoolSpec{CIDR: cidr}}
	}
	for _, tc := range []struct {
		name  string
		pools []*IPPool
		want  []string // one substring per reported pool; none when valid
	}{
		{name: "disjoint", pools: []*IPPool{pool("a", "10.0.0.0/16"), pool("b", "10.1.0.0/16"), pool("c", "fd00::/64")}},
		{name: "adjacent", pools: []*IPPool{pool("a", "10.0.0.0/25"), pool("b", "10.0.0.128/25")}},
		{name: "contained", pools: []*IPPool{pool("a", "10.0.0.0/16"), pool("b", "10.0.1.0/24")},
			want: []string{`invalid IPPool "b": spec.cidr: 10.0.1.0/24 overlaps 10.0.0.0/16 of IPPool "a"`}},
		{name: "identical", pools: []*IPPool{pool("a", "10.0.0.0/16"), pool("b", "10.0.0.0/16")},
			want: []string{`IPPool "b": spec.cidr: 10.0.0.0/16 overlaps 10.0.0.0/16 of IPPool "a"`}},
		{name: "v6 containing", pools: []*IPPool{pool("a", "fd00:1::/64"), pool("b", "fd00::/16")},
			want: []string{`IPPool "b": spec.cidr: fd00::/16 overlaps fd00:1::/64 of IPPool "a"`}},
		{name: "same name replaces stored", pools: []*IPPool{pool("a", "10.0.0.0/16"), pool("b", "10.1.0.0/16"), pool("a", "10.0.0.0/15")},
			want: []string{`IPPool "b": spec.cidr: 10.1.0.0/16 overlaps 10.0.0.0/15 of IPPool "a"`}},
		{name: "reapply same pool", pools: []*IPPool{pool("a", "10.0.0.0/16"), pool("a", "10.0.0.0/16")}},
		{name: "two offenders", pools: []*IPPool{pool("a", "10.0.0.0/8"), pool("b", "10.1.0.0/16"), pool("c", "10.2.0.0/16")},
			want: []string{`IPPool "b"`, `IPPool "c": spec.cidr: 10.2.0.0/16 overlaps 10.0.0.0/8 of IPPool "a"`}},
		{name: "unparseable skipped", pools: []*IPPool{pool("a", "bogus"), pool("b", "10.0.0.0/8"), nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePools(tc.pools)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !IsInvalid(err) {
				t.Fatalf("want a validation error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var n int
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				n = len(j.Unwrap())
			} else if _, ok := errors.AsType[*ValidationError](err); ok {
				n = 1
			}
			if n != len(tc.want) {
				t.Errorf("got %d pool errors, want %d: %v", n, len(tc.want), err)
			}
		})
	}
}

func TestValidateIPAMConfiguration(t *testing.T) {
	runValidateCases(t, []validateCase{
		{name: "defaults", r: testIPAMConfig(nil)},
		{name: "max blocks without strict affinity", r: testIPAMConfig(func(c *IPAMConfiguration) { c.Spec.MaxBlocksPerHost = 4 })},
		{name: "max blocks negative", r: testIPAMConfig(func(c *IPAMConfiguration) { c.Spec.MaxBlocksPerHost = -1 }),
			path: "spec.maxBlocksPerHost", msg: "must be 0 (no limit) or more"},
		{name: "no auto allocate with strict affinity", r: testIPAMConfig(func(c *IPAMConfiguration) {
			c.Spec.AutoAllocateBlocks = ptr(false)
			c.Spec.StrictAffinity = true
		})},
		{name: "no auto allocate without strict affinity", r: testIPAMConfig(func(c *IPAMConfiguration) { c.Spec.AutoAllocateBlocks = ptr(false) }),
			path: "spec.autoAllocateBlocks", msg: "requires strictAffinity true"},
	})
}
