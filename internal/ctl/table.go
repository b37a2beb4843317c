package ctl

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/calyx-net/calyx/internal/api"
)

// column is one table column: its header and how to render a resource.
type column struct {
	header string
	value  func(api.Resource) string
	wide   bool // shown only with -o wide
}

// writeTable prints resources as an aligned table.
func writeTable(w io.Writer, kind api.KindInfo, rs []api.Resource, wide bool) error {
	cols := append([]column{{header: "NAME", value: func(r api.Resource) string { return r.GetObjectMeta().Name }}}, kindColumns(kind.Kind)...)
	cols = append(cols,
		column{header: "LABELS", value: func(r api.Resource) string { return labelString(r.GetObjectMeta().Labels) }, wide: true},
		column{header: "AGE", value: func(r api.Resource) string { return age(r.GetObjectMeta().CreationTimestamp, time.Now()) }})
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	var hdr []string
	for _, c := range cols {
		if wide || !c.wide {
			hdr = append(hdr, c.header)
		}
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, r := range rs {
		var row []string
		for _, c := range cols {
			if wide || !c.wide {
				v := c.value(r)
				if v == "" {
					v = "-"
				}
				row = append(row, v)
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// kindColumns are the columns particular to a kind.
func kindColumns(kind string) []column {
	switch kind {
	case api.KindIPPool:
		return []column{
			{header: "CIDR", value: func(r api.Resource) string { return r.(*api.IPPool).Spec.CIDR }},
			{header: "BLOCKSIZE", value: func(r api.Resource) string { return strconv.Itoa(r.(*api.IPPool).Spec.BlockSize) }},
			{header: "VXLAN", value: func(r api.Resource) string { return r.(*api.IPPool).Spec.VXLANMode }},
			{header: "NAT", value: func(r api.Resource) string { return strconv.FormatBool(r.(*api.IPPool).Spec.NATOutgoing) }},
			{header: "DISABLED", value: func(r api.Resource) string { return strconv.FormatBool(r.(*api.IPPool).Spec.Disabled) }},
			{header: "IPIP", value: func(r api.Resource) string { return r.(*api.IPPool).Spec.IPIPMode }, wide: true},
			{header: "SELECTOR", value: func(r api.Resource) string { return r.(*api.IPPool).Spec.NodeSelector }, wide: true},
		}
	case api.KindNode:
		return []column{
			{header: "ASN", value: func(r api.Resource) string {
				if b := r.(*api.Node).Spec.BGP; b != nil && b.ASNumber != nil {
					return strconv.FormatUint(uint64(*b.ASNumber), 10)
				}
				return "(default)"
			}},
			{header: "IPV4", value: func(r api.Resource) string {
				if b := r.(*api.Node).Spec.BGP; b != nil {
					return b.IPv4Address
				}
				return ""
			}},
			{header: "IPV6", value: func(r api.Resource) string {
				if b := r.(*api.Node).Spec.BGP; b != nil {
					return b.IPv6Address
				}
				return ""
			}, wide: true},
		}
	case api.KindWorkloadEndpoint:
		return []column{
			{header: "NODE", value: func(r api.Resource) string { return r.(*api.WorkloadEndpoint).Spec.Node }},
			{header: "ORCHESTRATOR", value: func(r api.Resource) string { return r.(*api.WorkloadEndpoint).Spec.Orchestrator }},
			{header: "WORKLOAD", value: func(r api.Resource) string { return r.(*api.WorkloadEndpoint).Spec.Workload }, wide: true},
			{header: "INTERFACE", value: func(r api.Resource) string { return r.(*api.WorkloadEndpoint).Spec.InterfaceName }},
			{header: "NETWORKS", value: func(r api.Resource) string { return strings.Join(r.(*api.WorkloadEndpoint).Spec.IPNetworks, ",") }},
			{header: "PROFILES", value: func(r api.Resource) string { return strings.Join(r.(*api.WorkloadEndpoint).Spec.Profiles, ",") }, wide: true},
		}
	case api.KindHostEndpoint:
		return []column{
			{header: "NODE", value: func(r api.Resource) string { return r.(*api.HostEndpoint).Spec.Node }},
			{header: "INTERFACE", value: func(r api.Resource) string { return r.(*api.HostEndpoint).Spec.InterfaceName }},
			{header: "IPS", value: func(r api.Resource) string { return strings.Join(r.(*api.HostEndpoint).Spec.ExpectedIPs, ",") }},
			{header: "PROFILES", value: func(r api.Resource) string { return strings.Join(r.(*api.HostEndpoint).Spec.Profiles, ",") }, wide: true},
		}
	case api.KindGlobalNetworkPolicy:
		return []column{
			{header: "ORDER", value: func(r api.Resource) string {
				if o := r.(*api.GlobalNetworkPolicy).Spec.Order; o != nil {
					return strconv.FormatFloat(*o, 'g', -1, 64)
				}
				return ""
			}},
			{header: "SELECTOR", value: func(r api.Resource) string { return r.(*api.GlobalNetworkPolicy).Spec.Selector }},
			{header: "TYPES", value: func(r api.Resource) string { return strings.Join(r.(*api.GlobalNetworkPolicy).Spec.Types, ",") }},
			{header: "RULES", value: func(r api.Resource) string {
				s := r.(*api.GlobalNetworkPolicy).Spec
				return fmt.Sprintf("%d in, %d out", len(s.Ingress), len(s.Egress))
			}, wide: true},
		}
	case api.KindProfile:
		return []column{
			{header: "RULES", value: func(r api.Resource) string {
				s := r.(*api.Profile).Spec
				return fmt.Sprintf("%d in, %d out", len(s.Ingress), len(s.Egress))
			}},
			{header: "LABELSTOAPPLY", value: func(r api.Resource) string { return labelString(r.(*api.Profile).Spec.LabelsToApply) }, wide: true},
		}
	case api.KindGlobalNetworkSet:
		return []column{
			{header: "NETS", value: func(r api.Resource) string { return strings.Join(r.(*api.GlobalNetworkSet).Spec.Nets, ",") }},
		}
	case api.KindBGPPeer:
		return []column{
			{header: "PEERIP", value: func(r api.Resource) string { return r.(*api.BGPPeer).Spec.PeerIP }},
			{header: "ASN", value: func(r api.Resource) string { return strconv.FormatUint(uint64(r.(*api.BGPPeer).Spec.ASNumber), 10) }},
			{header: "NODE", value: func(r api.Resource) string {
				s := r.(*api.BGPPeer).Spec
				switch {
				case s.Node != "":
					return s.Node
				case s.NodeSelector != "":
					return s.NodeSelector
				}
				return "(global)"
			}},
		}
	case api.KindIPAMConfiguration:
		return []column{
			{header: "STRICTAFFINITY", value: func(r api.Resource) string {
				return strconv.FormatBool(r.(*api.IPAMConfiguration).Spec.StrictAffinity)
			}},
			{header: "AUTOALLOCATE", value: func(r api.Resource) string {
				if a := r.(*api.IPAMConfiguration).Spec.AutoAllocateBlocks; a != nil {
					return strconv.FormatBool(*a)
				}
				return "true"
			}},
			{header: "MAXBLOCKSPERHOST", value: func(r api.Resource) string {
				if m := r.(*api.IPAMConfiguration).Spec.MaxBlocksPerHost; m > 0 {
					return strconv.Itoa(m)
				}
				return "unlimited"
			}},
		}
	case api.KindNodeConfiguration:
		return []column{
			{header: "LOGLEVEL", value: func(r api.Resource) string { return r.(*api.NodeConfiguration).Spec.LogSeverityScreen }},
			{header: "ENDPOINTTOHOST", value: func(r api.Resource) string {
				return r.(*api.NodeConfiguration).Spec.DefaultEndpointToHostAction
			}},
		}
	case api.KindBGPConfiguration:
		return []column{
			{header: "ASN", value: func(r api.Resource) string {
				if a := r.(*api.BGPConfiguration).Spec.ASNumber; a != nil {
					return strconv.FormatUint(uint64(*a), 10)
				}
				return ""
			}},
			{header: "MESH", value: func(r api.Resource) string {
				if m := r.(*api.BGPConfiguration).Spec.NodeToNodeMeshEnabled; m != nil {
					return strconv.FormatBool(*m)
				}
				return ""
			}},
		}
	}
	return nil
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// age renders the time since an RFC 3339 timestamp the way kubectl does.
func age(ts string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
