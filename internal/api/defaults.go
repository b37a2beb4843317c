package api

import (
	"net/netip"
	"strings"
)

// Defaults follow Calico's where Calico has one. Every SetDefaults sets
// TypeMeta to calyx.dev/v1 and the kind, fills in only fields that are
// unset, and rewrites case-insensitive enumerations (rule actions, protocol
// names, modes, log severities) to their canonical case, so that applying
// it twice changes nothing. It never "fixes" a value that is wrong: a pool
// CIDR with host bits set is left for Validate to reject with a
// suggestion, rather than silently masked.

// Default values.
const (
	DefaultIPv4BlockSize = 26
	DefaultIPv6BlockSize = 122
	// DefaultASNumber is the AS number of the "default" BGPConfiguration
	// when it sets none, as in Calico.
	DefaultASNumber ASNumber = 64512
)

// Enumerations with their canonical case.
var (
	encapModes   = []string{EncapNever, EncapAlways, EncapCrossSubnet}
	poolUses     = []string{IPPoolUseWorkload, IPPoolUseTunnel}
	ruleActions  = []string{ActionAllow, ActionDeny, ActionLog, ActionPass}
	policyTypes  = []string{PolicyTypeIngress, PolicyTypeEgress}
	hostActions  = []string{"Drop", "Accept", "Return"}
	sourceAddrs  = []string{"UseNodeIP", "None"}
	failsafeProt = []string{"tcp", "udp", "sctp"}
)

// SetDefaults fills in Calico's IPPool defaults: blockSize 26 for an IPv4
// CIDR and 122 for IPv6, vxlanMode and ipipMode "Never", and allowedUses
// [Workload, Tunnel]. An empty nodeSelector is kept and means all().
func (i *IPPool) SetDefaults() {
	i.TypeMeta = TypeMeta{Kind: KindIPPool, APIVersion: APIVersion}
	s := &i.Spec
	if s.BlockSize == 0 {
		s.BlockSize = DefaultIPv4BlockSize
		if p, err := netip.ParsePrefix(s.CIDR); err == nil && p.Addr().Is6() ||
			err != nil && strings.Contains(s.CIDR, ":") {
			s.BlockSize = DefaultIPv6BlockSize
		}
	}
	if s.VXLANMode == "" {
		s.VXLANMode = EncapNever
	}
	if s.IPIPMode == "" {
		s.IPIPMode = EncapNever
	}
	normalizeEnum(&s.VXLANMode, encapModes)
	normalizeEnum(&s.IPIPMode, encapModes)
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []string{IPPoolUseWorkload, IPPoolUseTunnel}
	}
	for j := range s.AllowedUses {
		normalizeEnum(&s.AllowedUses[j], poolUses)
	}
}

// SetDefaults sets autoAllocateBlocks to true when unset. maxBlocksPerHost
// stays 0, which means no limit.
func (i *IPAMConfiguration) SetDefaults() {
	i.TypeMeta = TypeMeta{Kind: KindIPAMConfiguration, APIVersion: APIVersion}
	if i.Spec.AutoAllocateBlocks == nil {
		t := true
		i.Spec.AutoAllocateBlocks = &t
	}
}

// SetDefaults sets TypeMeta; a Node has no other defaults.
func (n *Node) SetDefaults() {
	n.TypeMeta = TypeMeta{Kind: KindNode, APIVersion: APIVersion}
}

// SetDefaults normalises the profile's rules.
func (p *Profile) SetDefaults() {
	p.TypeMeta = TypeMeta{Kind: KindProfile, APIVersion: APIVersion}
	defaultRules(p.Spec.Ingress)
	defaultRules(p.Spec.Egress)
}

// SetDefaults normalises the rules and infers types when it is empty, as
// Calico does: no egress rules → [Ingress]; egress rules only → [Egress];
// both → [Ingress, Egress]. An empty selector is kept and means all().
func (g *GlobalNetworkPolicy) SetDefaults() {
	g.TypeMeta = TypeMeta{Kind: KindGlobalNetworkPolicy, APIVersion: APIVersion}
	s := &g.Spec
	defaultRules(s.Ingress)
	defaultRules(s.Egress)
	for j := range s.Types {
		normalizeEnum(&s.Types[j], policyTypes)
	}
	if len(s.Types) == 0 {
		s.Types = InferPolicyTypes(len(s.Ingress) > 0, len(s.Egress) > 0)
	}
}

// InferPolicyTypes returns the policy types Calico fills in for a policy
// that gives none.
func InferPolicyTypes(hasIngress, hasEgress bool) []string {
	switch {
	case hasIngress && hasEgress:
		return []string{PolicyTypeIngress, PolicyTypeEgress}
	case hasEgress:
		return []string{PolicyTypeEgress}
	default:
		return []string{PolicyTypeIngress}
	}
}

// SetDefaults writes bare IPs in nets as /32 or /128.
func (g *GlobalNetworkSet) SetDefaults() {
	g.TypeMeta = TypeMeta{Kind: KindGlobalNetworkSet, APIVersion: APIVersion}
	normalizeNets(g.Spec.Nets)
}

// SetDefaults writes bare IPs in ipNetworks as /32 or /128 and normalises
// port protocols.
func (w *WorkloadEndpoint) SetDefaults() {
	w.TypeMeta = TypeMeta{Kind: KindWorkloadEndpoint, APIVersion: APIVersion}
	normalizeNets(w.Spec.IPNetworks)
	defaultEndpointPorts(w.Spec.Ports)
}

// SetDefaults normalises port protocols.
func (h *HostEndpoint) SetDefaults() {
	h.TypeMeta = TypeMeta{Kind: KindHostEndpoint, APIVersion: APIVersion}
	defaultEndpointPorts(h.Spec.Ports)
}

// SetDefaults normalises sourceAddress's case.
func (b *BGPPeer) SetDefaults() {
	b.TypeMeta = TypeMeta{Kind: KindBGPPeer, APIVersion: APIVersion}
	normalizeEnum(&b.Spec.SourceAddress, sourceAddrs)
}

// SetDefaults gives the "default" object Calico's defaults,
// nodeToNodeMeshEnabled true and asNumber 64512, when they are unset;
// per-node objects ("node.<name>") inherit from it instead. It normalises
// logSeverityScreen's case.
func (b *BGPConfiguration) SetDefaults() {
	b.TypeMeta = TypeMeta{Kind: KindBGPConfiguration, APIVersion: APIVersion}
	s := &b.Spec
	normalizeEnum(&s.LogSeverityScreen, logSeverities)
	if b.Metadata.Name != "default" {
		return
	}
	if s.NodeToNodeMeshEnabled == nil {
		t := true
		s.NodeToNodeMeshEnabled = &t
	}
	if s.ASNumber == nil {
		as := DefaultASNumber
		s.ASNumber = &as
	}
}

// SetDefaults normalises the case of logSeverityScreen,
// defaultEndpointToHostAction and failsafe port protocols; calyx-node
// supplies defaults for unset fields itself.
func (n *NodeConfiguration) SetDefaults() {
	n.TypeMeta = TypeMeta{Kind: KindNodeConfiguration, APIVersion: APIVersion}
	s := &n.Spec
	normalizeEnum(&s.LogSeverityScreen, logSeverities)
	normalizeEnum(&s.DefaultEndpointToHostAction, hostActions)
	for _, pp := range []*[]ProtoPort{s.FailsafeInboundHostPorts, s.FailsafeOutboundHostPorts} {
		if pp == nil {
			continue
		}
		for j := range *pp {
			normalizeEnum(&(*pp)[j].Protocol, failsafeProt)
		}
	}
}

// defaultRules normalises rule fields in place.
func defaultRules(rules []Rule) {
	for i := range rules {
		r := &rules[i]
		normalizeEnum(&r.Action, ruleActions)
		if r.Protocol != nil {
			*r.Protocol = r.Protocol.canonicalName()
		}
		if r.NotProtocol != nil {
			*r.NotProtocol = r.NotProtocol.canonicalName()
		}
		normalizeNets(r.Source.Nets)
		normalizeNets(r.Source.NotNets)
		normalizeNets(r.Destination.Nets)
		normalizeNets(r.Destination.NotNets)
	}
}

func defaultEndpointPorts(ports []EndpointPort) {
	for i := range ports {
		ports[i].Protocol = ports[i].Protocol.canonicalName()
	}
}

// normalizeNets rewrites bare IPs as /32 or /128 CIDRs in place. Anything
// else, including a CIDR with host bits set, is left for validation.
func normalizeNets(nets []string) {
	for i, n := range nets {
		if strings.Contains(n, "/") {
			continue
		}
		if a, err := netip.ParseAddr(n); err == nil && a.Zone() == "" {
			a = a.Unmap()
			nets[i] = netip.PrefixFrom(a, a.BitLen()).String()
		}
	}
}
