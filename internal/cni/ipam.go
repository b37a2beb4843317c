package cni

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/calyx-net/calyx/internal/localapi"
)

// IPAM runs the calyx-ipam plugin's commands: Calyx addresses for any CNI
// plugin that delegates IPAM (bridge, ptp, macvlan, ...).
type IPAM struct {
	stdout, stderr io.Writer
	timeout        time.Duration
}

// NewIPAM returns the calyx-ipam plugin, printing results to stdout and
// logs to stderr.
func NewIPAM(stdout, stderr io.Writer) *IPAM {
	return &IPAM{stdout: stdout, stderr: stderr, timeout: DefaultTimeout}
}

// Funcs returns the commands for skel.PluginMainFuncs.
func (m *IPAM) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    withTimeout(m.timeout, m.Add),
		Del:    withTimeout(m.timeout, m.Del),
		Check:  withTimeout(m.timeout, m.Check),
		Status: withTimeout(m.timeout, m.Status),
		GC:     withTimeout(m.timeout, m.GC),
	}
}

// Add allocates the attachment's addresses and prints an IPAM result: ips
// with the pool's prefix length and gateway, ipam.routes, no interfaces.
func (m *IPAM) Add(ctx context.Context, args *skel.CmdArgs) error {
	if err := refuseOwnNetns(args, "IPAM ADD"); err != nil {
		return err
	}
	conf, log, err := setup(args.StdinData, args.Args, m.stderr, "IPAM ADD", args)
	if err != nil {
		return err
	}
	if err := conf.Err(); err != nil {
		return err
	}
	var resp localapi.IPAMAddResponse
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	if err := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathIPAMAdd,
		localapi.IPAMAddRequest{Attachment: att, IPAM: conf.IPAM}, &resp); err != nil {
		return agentError("allocating addresses", err)
	}
	r, err := ipamResult(resp, conf)
	if err != nil {
		// Nothing may stay allocated for a result the caller never saw.
		if derr := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathIPAMDel, localapi.IPAMDelRequest{Attachment: att}, nil); derr != nil {
			log.Error("releasing after a bad answer", "err", derr)
		}
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	log.Info("allocated", "ips", resp.IPs)
	return printResult(m.stdout, r, conf.CNIVersion)
}

func ipamResult(resp localapi.IPAMAddResponse, conf *Config) (*types100.Result, error) {
	r := &types100.Result{CNIVersion: types100.ImplementedSpecVersion, Routes: conf.Routes, DNS: conf.DNS}
	for _, a := range resp.IPs {
		p, err := netip.ParsePrefix(a.Address)
		if err != nil {
			return nil, fmt.Errorf("calyx-node answered address %q: expected address/prefix-length", a.Address)
		}
		ip := &types100.IPConfig{Address: net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if a.Gateway != "" {
			gw, err := netip.ParseAddr(a.Gateway)
			if err != nil {
				return nil, fmt.Errorf("calyx-node answered gateway %q: not an address", a.Gateway)
			}
			ip.Gateway = net.IP(gw.AsSlice())
		}
		r.IPs = append(r.IPs, ip)
	}
	if len(r.IPs) == 0 {
		return nil, fmt.Errorf("calyx-node answered no addresses")
	}
	return r, nil
}

// Del releases the attachment's addresses; nothing allocated is success.
// A CNI_NETNS that is the plugin's own namespace changes nothing: IPAM
// never touches a namespace, and releasing by the attachment's key is
// what DEL does in every case.
func (m *IPAM) Del(ctx context.Context, args *skel.CmdArgs) error {
	if _, err := checkNetns(args, "IPAM DEL"); err != nil {
		return err
	}
	conf, log, err := setup(args.StdinData, args.Args, m.stderr, "IPAM DEL", args)
	if err != nil {
		return err
	}
	for _, e := range conf.Problems() {
		log.Warn("ignoring a bad config value for DEL", "err", e)
	}
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	if err := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathIPAMDel, localapi.IPAMDelRequest{Attachment: att}, nil); err != nil {
		return agentError("releasing addresses", err)
	}
	log.Info("released")
	return nil
}

// Check checks that the prevResult's addresses are still allocated to the
// attachment. The host side belongs to the main plugin, so calyx-node's
// problems with it are not IPAM's.
func (m *IPAM) Check(ctx context.Context, args *skel.CmdArgs) error {
	if err := refuseOwnNetns(args, "IPAM CHECK"); err != nil {
		return err
	}
	conf, _, err := setup(args.StdinData, args.Args, m.stderr, "IPAM CHECK", args)
	if err != nil {
		return err
	}
	prev, err := prevResult(conf)
	if err != nil {
		return err
	}
	var want []netip.Prefix
	for _, ip := range prev.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			want = append(want, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	var resp localapi.CheckResponse
	att := localapi.Attachment{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	if err := localapi.NewClient(conf.AgentSocket).Do(ctx, localapi.PathCNICheck, localapi.CheckRequest{Attachment: att}, &resp); err != nil {
		return agentError("checking the allocation", err)
	}
	if problems := missingIPs(want, resp.IPs); len(problems) > 0 {
		return problemsError("the allocation of "+att.Handle(), problems)
	}
	return nil
}

// Status reports whether calyx-node can allocate: CNI code 50 if not.
func (m *IPAM) Status(ctx context.Context, args *skel.CmdArgs) error {
	conf, _, err := setup(args.StdinData, args.Args, m.stderr, "IPAM STATUS", args)
	if err != nil {
		return err
	}
	return agentStatus(ctx, conf.AgentSocket)
}

// GC releases the network's attachments on this host that are not valid.
func (m *IPAM) GC(ctx context.Context, args *skel.CmdArgs) error {
	conf, log, err := setup(args.StdinData, args.Args, m.stderr, "IPAM GC", args)
	if err != nil {
		return err
	}
	return agentGC(ctx, conf, log)
}
