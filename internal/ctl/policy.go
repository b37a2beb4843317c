package ctl

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
)

// policyCommand is `calyxctl policy`: questions about network policy.
func (c *cli) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Explain network policy decisions",
	}
	cmd.AddCommand(c.policyTraceCommand())
	return cmd
}

// traceKinds are the kinds a trace reads: everything calc uses.
var traceKinds = []string{
	api.KindWorkloadEndpoint, api.KindHostEndpoint, api.KindProfile, api.KindGlobalNetworkPolicy,
	api.KindGlobalNetworkSet, api.KindIPPool, api.KindNodeConfiguration, api.KindNode,
}

func (c *cli) policyTraceCommand() *cobra.Command {
	var from, to, port, icmp string
	cmd := &cobra.Command{
		Use:   "trace --from ENDPOINT|IP --to ENDPOINT|IP [--port N/tcp|udp|sctp | --icmp TYPE[/CODE]]",
		Short: "Say whether a new connection would be allowed, and which policy or profile rule decides",
		Long: `trace evaluates a new connection against the policy in the datastore, with the
same code calyx-node uses to program the kernel: the egress side at the source
endpoint (on its node) and the ingress side at the destination endpoint (on its
node). The first line of output is "allowed" or "denied"; each following line
names the policy or profile and the rule index that decided on one side, or
says that no policy matched. An address that is not a Calyx endpoint has no
side of its own. Without --port or --icmp, the packet is an ICMP echo request.
The exit status is 0 whatever the verdict, 1 for bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("--from and --to are both required (an endpoint name or an IP address)")
			}
			if port != "" && icmp != "" {
				return fmt.Errorf("--port and --icmp: give one or the other")
			}
			pkt, err := parseTraceL4(port, icmp)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				rs, err := listKinds(ctx, s, traceKinds)
				if err != nil {
					return err
				}
				if pkt.Src, pkt.Dst, err = resolvePair(rs, from, to); err != nil {
					return err
				}
				if pkt.Protocol == protoICMP && pkt.Src.Is6() {
					pkt.Protocol, pkt.ICMPType = protoICMPv6, icmpv6Of(pkt.ICMPType, icmp == "")
				}
				res := calc.Trace(rs, pkt)
				_, err = fmt.Fprintln(c.opts.Out, strings.TrimRight(res.String(), "\n"))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source: a workload endpoint's name or an IP address")
	f.StringVar(&to, "to", "", "destination: a workload endpoint's name or an IP address")
	f.StringVar(&port, "port", "", "destination port and protocol, e.g. 80/tcp, 53/udp")
	f.StringVar(&icmp, "icmp", "", "ICMP type and optional code, e.g. 8 or 3/4 (ICMPv6 numbers for IPv6)")
	return cmd
}

const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// icmpv6Of maps the default echo request to ICMPv6's; an explicit type is
// taken as given.
func icmpv6Of(t uint8, isDefault bool) uint8 {
	if isDefault {
		return 128
	}
	return t
}

// parseTraceL4 reads --port or --icmp into a packet's protocol fields.
func parseTraceL4(port, icmp string) (calc.Packet, error) {
	var p calc.Packet
	switch {
	case port != "":
		num, proto, ok := strings.Cut(port, "/")
		if !ok {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 {
			return p, fmt.Errorf("--port %q: expected a port number 1-65535 and a protocol, e.g. 80/tcp", port)
		}
		switch strings.ToLower(proto) {
		case "tcp":
			p.Protocol = 6
		case "udp":
			p.Protocol = 17
		case "sctp":
			p.Protocol = 132
		default:
			return p, fmt.Errorf("--port %q: protocol %q: expected tcp, udp or sctp", port, proto)
		}
		p.DstPort, p.SrcPort = uint16(n), 40000
	case icmp != "":
		t, code, hasCode := strings.Cut(icmp, "/")
		tv, err := strconv.ParseUint(t, 10, 8)
		if err != nil {
			return p, fmt.Errorf("--icmp %q: expected an ICMP type 0-255, optionally /CODE, e.g. 8 or 3/4", icmp)
		}
		p.Protocol, p.ICMPType = protoICMP, uint8(tv)
		if hasCode {
			cv, err := strconv.ParseUint(code, 10, 8)
			if err != nil {
				return p, fmt.Errorf("--icmp %q: code %q: expected 0-255", icmp, code)
			}
			p.ICMPCode = uint8(cv)
		}
	default:
		p.Protocol, p.ICMPType = protoICMP, 8
	}
	return p, nil
}

// listKinds reads every resource of the kinds.
func listKinds(ctx context.Context, s store, kinds []string) ([]api.Resource, error) {
	var out []api.Resource
	for _, k := range kinds {
		ki, _ := api.LookupKind(k)
		rs, _, err := s.List(ctx, ki, nil)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", ki.Plural, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// resolvePair turns --from and --to into addresses of one family: an IP
// address as given, an endpoint's address of the other side's family (its
// first IPv4 address when both are endpoints and both have one).
func resolvePair(rs []api.Resource, from, to string) (src, dst netip.Addr, err error) {
	fa, fep, err := resolveEnd(rs, "--from", from)
	if err != nil {
		return src, dst, err
	}
	ta, tep, err := resolveEnd(rs, "--to", to)
	if err != nil {
		return src, dst, err
	}
	for _, v6 := range []bool{false, true} {
		s, sok := pickFamily(fa, fep, v6)
		d, dok := pickFamily(ta, tep, v6)
		if sok && dok {
			return s, d, nil
		}
	}
	return src, dst, fmt.Errorf("--from %s and --to %s have no address family in common", from, to)
}

// resolveEnd reads one side: an IP address, or a workload endpoint's name.
func resolveEnd(rs []api.Resource, flag, v string) (netip.Addr, *api.WorkloadEndpoint, error) {
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap(), nil, nil
	}
	for _, r := range rs {
		if w, ok := r.(*api.WorkloadEndpoint); ok && w.Metadata.Name == v {
			if len(w.Spec.IPNetworks) == 0 {
				return netip.Addr{}, nil, fmt.Errorf("%s %q: the endpoint has no addresses", flag, v)
			}
			return netip.Addr{}, w, nil
		}
	}
	return netip.Addr{}, nil, fmt.Errorf("%s %q: not an IP address, and no workload endpoint has that name (calyxctl get workloadendpoints lists them)", flag, v)
}

// pickFamily returns the side's address of the family.
func pickFamily(a netip.Addr, w *api.WorkloadEndpoint, v6 bool) (netip.Addr, bool) {
	if w == nil {
		return a, a.Is6() == v6
	}
	for _, n := range w.Spec.IPNetworks {
		var x netip.Addr
		if p, err := netip.ParsePrefix(n); err == nil {
			x = p.Addr()
		} else if y, err := netip.ParseAddr(n); err == nil {
			x = y
		} else {
			continue
		}
		if x.Unmap().Is6() == v6 {
			return x.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
