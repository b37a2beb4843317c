package cni

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/calyx-net/calyx/internal/localapi"
)

// Check checks an attachment against the prevResult of its ADD: the
// container interface, its addresses and routes, and calyx-node's check of
// the endpoint and the host side. Every problem found is reported in one
// error.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	if err := refuseOwnNetns(args, "CHECK"); err != nil {
		return err
	}
	conf, _, err := setup(args.StdinData, args.Args, p.stderr, "CHECK", args)
	if err != nil {
		return err
	}
	if err := conf.Err(); err != nil {
		return err
	}
	prev, err := prevResult(conf)
	if err != nil {
		return err
	}
	spec, err := specFromResult(prev, args)
	if err != nil {
		return err
	}
	spec.MTU = conf.MTU
	problems, err := p.kernel.Check(ctx, spec)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("checking %s in %s: %v", args.IfName, args.Netns, err), "")
	}
	var resp localapi.CheckResponse
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	if err := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: att}, &resp); err != nil {
		return agentError("checking the endpoint", err)
	}
	problems = append(problems, resp.Problems...)
	if spec.HostIfName != "" && resp.HostIfName != "" && spec.HostIfName != resp.HostIfName {
		problems = append(problems, fmt.Sprintf("host interface is %s, calyx-node has %s", spec.HostIfName, resp.HostIfName))
	}
	problems = append(problems, missingIPs(spec.IPs, resp.IPs)...)
	if len(problems) > 0 {
		return problemsError(fmt.Sprintf("%s in %s", args.IfName, args.Netns), problems)
	}
	return nil
}

// prevResult returns the config's prevResult as a 1.x result.
func prevResult(conf *Config) (*types100.Result, error) {
	if len(conf.RawPrevResult) == 0 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs the ADD's result as prevResult in the config", "")
	}
	r, err := version.NewResult(conf.CNIVersion, conf.RawPrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decoding prevResult: %v", err), "")
	}
	r100, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("converting prevResult: %v", err), "")
	}
	return r100, nil
}

// specFromResult finds the attachment's interfaces, addresses and gateways
// in an ADD result.
func specFromResult(r *types100.Result, args *skel.CmdArgs) (vethSpec, error) {
	s := vethSpec{Netns: args.Netns, IfName: args.IfName}
	idx := -1
	for i, intf := range r.Interfaces {
		switch {
		case intf.Name == args.IfName && intf.Sandbox != "":
			idx = i
		case intf.Sandbox == "" && s.HostIfName == "":
			s.HostIfName = intf.Name
		}
	}
	if idx < 0 {
		return s, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("prevResult has no interface %s in a sandbox", args.IfName), "")
	}
	for _, ip := range r.IPs {
		if ip.Interface == nil || *ip.Interface != idx {
			continue
		}
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		ones, _ := ip.Address.Mask.Size()
		s.IPs = append(s.IPs, netip.PrefixFrom(a, ones))
		if gw, ok := netip.AddrFromSlice(ip.Gateway); ok {
			gw = gw.Unmap()
			if gw.Is4() {
				s.Gateway4 = gw
			} else {
				s.Gateway6 = gw
			}
		}
	}
	if len(s.IPs) == 0 {
		return s, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("prevResult has no address on %s", args.IfName), "")
	}
	for _, rt := range r.Routes {
		gw, ok := netip.AddrFromSlice(rt.GW)
		if ones, _ := rt.Dst.Mask.Size(); !ok || ones != 0 {
			continue
		}
		gw = gw.Unmap()
		if gw.Is4() && !s.Gateway4.IsValid() {
			s.Gateway4 = gw
		} else if gw.Is6() && !s.Gateway6.IsValid() {
			s.Gateway6 = gw
		}
	}
	return s, nil
}

// missingIPs lists the prevResult addresses calyx-node does not hold for
// the attachment. Prefix lengths may differ (calyx-ipam answers the pool's).
func missingIPs(want []netip.Prefix, have []string) []string {
	held, err := parsePrefixes(have)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, w := range want {
		if !slices.ContainsFunc(held, func(h netip.Prefix) bool { return h.Addr() == w.Addr() }) {
			out = append(out, fmt.Sprintf("address %s is not allocated to this attachment", w.Addr()))
		}
	}
	return out
}
