package cni

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// HostVethMAC is the MAC of every host-side veth, as in Calico: the host
// answers the container's ARP for the gateway by proxy ARP, so the
// container only ever talks to this one MAC, and a restarted container
// finds the same neighbour entry valid.
const HostVethMAC = "ee:ee:ee:ee:ee:ee"

// DefaultGateway4 is the IPv4 next hop containers route via. It is never
// assigned to any interface: proxy ARP on the host veth answers for it.
const DefaultGateway4 = "169.254.1.1"

// attachment is what an ADD built, enough to print its result and to check
// it later.
type attachment struct {
	HostIfName   string
	IfName       string
	ContainerMAC string
	// ChosenMAC is the container MAC calyx-node chose at ADD (nil: it
	// chose none, the kernel picks).
	ChosenMAC net.HardwareAddr
	Netns     string
	MTU       int
	// IPs are the container's addresses as /32 and /128 prefixes.
	IPs      []netip.Prefix
	Gateway4 netip.Addr
	Gateway6 netip.Addr
	DNS      types.DNS
}

// result builds the 1.1.0 result of an ADD: two interfaces (the host veth,
// without a sandbox, and the container interface in its sandbox), the
// addresses on the container interface with their gateways, and the default
// routes. Converting it to 0.1.0/0.2.0 keeps the first address of each
// family with its gateway, which is what Mesos reads. The interface MTU is
// a 1.1.0 field, set only for configs of that version or later.
func (a *attachment) result(cniVersion string) *types100.Result {
	mtu := 0
	if ok, err := version.GreaterThanOrEqualTo(cniVersion, "1.1.0"); err == nil && ok {
		mtu = a.MTU
	}
	r := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: a.HostIfName, Mac: HostVethMAC},
			{Name: a.IfName, Mac: a.ContainerMAC, Sandbox: a.Netns, Mtu: mtu},
		},
		DNS: a.DNS,
	}
	var has4, has6 bool
	for _, p := range a.IPs {
		ip := &types100.IPConfig{Interface: types100.Int(1), Address: prefixNet(p)}
		if p.Addr().Is4() {
			has4 = true
			ip.Gateway = net.IP(a.Gateway4.AsSlice())
		} else {
			has6 = true
			if a.Gateway6.IsValid() {
				ip.Gateway = net.IP(a.Gateway6.AsSlice())
			}
		}
		r.IPs = append(r.IPs, ip)
	}
	if has4 {
		r.Routes = append(r.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: net.IP(a.Gateway4.AsSlice())})
	}
	if has6 && a.Gateway6.IsValid() {
		r.Routes = append(r.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: net.IP(a.Gateway6.AsSlice())})
	}
	return r
}

func prefixNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// printResult converts r to the config's cniVersion and writes it.
func printResult(w io.Writer, r types.Result, cniVersion string) error {
	out, err := r.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("converting the result to CNI %s: %v", cniVersion, err), "")
	}
	if err := out.PrintTo(w); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("printing the result: %v", err), "")
	}
	return nil
}

// parsePrefixes parses calyx-node's addresses.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			// A bare address is a host address.
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("parsing address %q from calyx-node: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}
