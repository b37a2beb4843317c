package api

import (
	"errors"
	"net/netip"
)

// reservedRanges are ranges no pool may overlap: workloads' default gateway
// 169.254.1.1 lives in IPv4 link-local, and loopback and multicast
// addresses cannot be given to an interface.
var reservedRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "the IPv4 link-local range"},
	{netip.MustParsePrefix("127.0.0.0/8"), "the IPv4 loopback range"},
	{netip.MustParsePrefix("224.0.0.0/4"), "the IPv4 multicast range"},
	{netip.MustParsePrefix("fe80::/10"), "the IPv6 link-local range"},
	{netip.MustParsePrefix("::1/128"), "the IPv6 loopback address"},
	{netip.MustParsePrefix("ff00::/8"), "the IPv6 multicast range"},
}

// Validate checks the pool: a CIDR without host bits, a block size that
// fits the family and the pool, one encapsulation at most (IPIP only for
// IPv4), a valid nodeSelector and allowedUses.
func (i *IPPool) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &i.Metadata, nameDNS)
	s := &i.Spec

	var pool netip.Prefix
	if s.CIDR == "" {
		fe.add("spec.cidr", "must be set (e.g. 10.0.0.0/16)")
	} else if p, err := parseCIDR(s.CIDR); err != nil {
		fe.add("spec.cidr", "%s", err.Error())
	} else if m := p.Masked(); m != p {
		fe.add("spec.cidr", "%s has host bits set; did you mean %s?", s.CIDR, m)
	} else {
		pool = p
		for _, r := range reservedRanges {
			if p.Overlaps(r.prefix) {
				fe.add("spec.cidr", "%s overlaps %s (%s)", s.CIDR, r.what, r.prefix)
			}
		}
	}

	if pool.IsValid() {
		lo, hi := 20, 32
		if pool.Addr().Is6() {
			lo, hi = 116, 128
		}
		switch {
		case s.BlockSize < lo || s.BlockSize > hi:
			fe.add("spec.blockSize", "%d is out of range: must be %d-%d for an IPv%d pool", s.BlockSize, lo, hi, family(pool.Addr()))
		case s.BlockSize < pool.Bits():
			fe.add("spec.blockSize", "%d is larger than the pool (/%d): must be at least %d", s.BlockSize, pool.Bits(), pool.Bits())
		}
	}

	validateEnum(&fe, "spec.vxlanMode", s.VXLANMode, encapModes, true)
	validateEnum(&fe, "spec.ipipMode", s.IPIPMode, encapModes, true)
	vxlan := s.VXLANMode != "" && s.VXLANMode != EncapNever
	ipip := s.IPIPMode != "" && s.IPIPMode != EncapNever
	if vxlan && ipip {
		fe.add("spec.ipipMode", "%q together with vxlanMode %q: a pool may use one encapsulation at most", s.IPIPMode, s.VXLANMode)
	}
	if ipip && pool.IsValid() && pool.Addr().Is6() {
		fe.add("spec.ipipMode", "%q: IPIP is only for IPv4 pools; use vxlanMode for IPv6", s.IPIPMode)
	}

	validateSelector(&fe, "spec.nodeSelector", s.NodeSelector)
	seen := map[string]bool{}
	for j, u := range s.AllowedUses {
		validateEnum(&fe, pindex("spec.allowedUses", j), u, poolUses, false)
		if seen[u] {
			fe.add(pindex("spec.allowedUses", j), "%q is listed twice", u)
		}
		seen[u] = true
	}
	return fe.result(i)
}

// ValidatePools checks pools against each other: no two pools' CIDRs may
// overlap. The CLI calls it with every stored pool followed by the incoming
// ones; a later pool with the same name replaces an earlier one, so
// re-applying or editing a pool is not an overlap with itself. Pools whose
// CIDR does not parse are skipped (their own Validate reports them). The
// error joins one *ValidationError per offending pool, naming both pools
// and both CIDRs.
func ValidatePools(pools []*IPPool) error {
	type entry struct {
		name string
		cidr string
		p    netip.Prefix
	}
	var list []entry
	byName := map[string]int{}
	for _, pool := range pools {
		if pool == nil {
			continue
		}
		p, err := parseCIDR(pool.Spec.CIDR)
		if err != nil {
			continue
		}
		e := entry{name: pool.Metadata.Name, cidr: pool.Spec.CIDR, p: p.Masked()}
		if j, ok := byName[e.name]; ok {
			list[j] = e
			continue
		}
		byName[e.name] = len(list)
		list = append(list, e)
	}
	var errs []error
	for j := 1; j < len(list); j++ {
		var fe fieldErrors
		for k := range j {
			if list[j].p.Overlaps(list[k].p) {
				fe.add("spec.cidr", "%s overlaps %s of IPPool %q", list[j].cidr, list[k].cidr, list[k].name)
			}
		}
		if len(fe) > 0 {
			errs = append(errs, &ValidationError{Kind: KindIPPool, Name: list[j].name, Fields: fe})
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// Validate checks the IPAM settings. Calyx, unlike Calico, allows
// maxBlocksPerHost > 0 without strictAffinity: a host that reaches its
// limit then borrows addresses from other hosts' blocks. As in Calico,
// autoAllocateBlocks false requires strictAffinity true (otherwise a host
// could neither claim a block nor be kept out of others').
func (i *IPAMConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &i.Metadata, nameDefault)
	s := &i.Spec
	if s.MaxBlocksPerHost < 0 {
		fe.add("spec.maxBlocksPerHost", "%d: must be 0 (no limit) or more", s.MaxBlocksPerHost)
	}
	if s.AutoAllocateBlocks != nil && !*s.AutoAllocateBlocks && !s.StrictAffinity {
		fe.add("spec.autoAllocateBlocks", "false requires strictAffinity true")
	}
	return fe.result(i)
}
