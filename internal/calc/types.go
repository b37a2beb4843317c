package calc

import (
	"net"
	"net/netip"
)

// The desired state of one host, as calc computes it and the reconcile
// loop hands it to the reconcilers. Every value reachable from a State is
// immutable once published: when something changes, calc builds a new
// value and replaces the map entry, so a reconciler may keep the values it
// last programmed and compare them with the new ones.

// State is the desired dataplane of one host.
type State struct {
	// Endpoints are this node's workload endpoints, by WorkloadEndpoint
	// name.
	Endpoints map[string]*Endpoint
	// HostEndpoints are this node's HostEndpoints, by interface name.
	HostEndpoints map[string]*HostEndpoint
	// Chains are the rule programs the endpoints refer to, by ID: one per
	// (policy, direction) and (profile, direction) in use on this node.
	Chains map[string]*Chain
	// Sets are the address sets the chains' rules refer to, by ID.
	Sets map[string]*Set
	// Config is the host-wide part: defaults, failsafes, NAT.
	Config *Config
	// Routes are the routes to other hosts' addresses and the blackholes
	// of this host's blocks, by destination.
	Routes map[netip.Prefix]*Route
	// VXLAN holds this host's VXLAN device of each family (4, 6) that
	// it needs.
	VXLAN map[int]*VXLAN
	// BGP is this host's BGP speaker; nil without BGP.
	BGP *BGP
}

// Endpoint is a local workload endpoint: its host side (for the route
// reconciler) and its policy (for the nftables reconciler).
type Endpoint struct {
	Name   string // WorkloadEndpoint name
	IfName string // host veth, "calyx" + 10 hex characters
	// MAC is the container interface's MAC; nil when not yet known.
	MAC   net.HardwareAddr
	Addrs []netip.Addr // the container's addresses, sorted
	// Labels are the effective labels (profiles' labelsToApply, overridden
	// by the endpoint's own), for diagnostics.
	Labels map[string]string
	// Ingress is the policy for traffic to the workload, Egress for
	// traffic from it.
	Ingress, Egress Tier
	// PortMappings are DNATs from this host's addresses to the workload.
	PortMappings []PortMapping
}

// Tier is the ordered policy of one endpoint in one direction, as in
// calico-design.md §6.2 "Endpoint chain":
//
//  1. established and related traffic is accepted, invalid dropped;
//  2. if Policies is not empty, each policy chain runs in order: Allow
//     accepts, Deny drops, Pass skips the remaining policies and goes to
//     the profiles; if none decided, the packet is dropped ("end of
//     tier");
//  3. each profile chain runs in order: Allow accepts, Deny drops; if none
//     decided, the packet is dropped.
type Tier struct {
	Policies []string // chain IDs, in order (order ascending, nil last, then name)
	Profiles []string // chain IDs, in the endpoint's profile order
}

// HostEndpoint is a host interface with policy (HostEndpoint resource).
// Failsafe ports in Config are accepted before its policy.
type HostEndpoint struct {
	Name   string // HostEndpoint resource name
	IfName string
	Addrs  []netip.Addr // expectedIPs
	Labels map[string]string
	// Ingress is the policy for traffic entering the host through the
	// interface (to the host itself), Egress for traffic the host sends
	// out of it.
	Ingress, Egress Tier
}

// PortMapping is one Mesos port mapping: traffic to HostPort on any of the
// host's own addresses goes to Addr:ContainerPort.
type PortMapping struct {
	Protocol      uint8 // 6 tcp, 17 udp, 132 sctp
	HostPort      uint16
	ContainerPort uint16
	Addr          netip.Addr // the workload's address (one mapping per family)
}

// Chain kinds.
const (
	KindPolicy  = "policy"  // a GlobalNetworkPolicy
	KindProfile = "profile" // a Profile
)

// Directions.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// Chain is the rules of one policy or profile in one direction. Its ID is
// ChainID(Kind, Name, Dir).
type Chain struct {
	ID   string
	Kind string // KindPolicy or KindProfile
	Name string // the resource's name
	Dir  string // Ingress or Egress
	// Missing is set for a profile that does not exist: its chain drops
	// everything (Rules holds one Deny rule) so the endpoint fails closed.
	Missing bool
	Rules   []Rule
}

// Actions of a rule (the api.Action* values).
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
	ActionLog   = "Log"
	ActionPass  = "Pass"
)

// Rule is one rule of a chain, with every selector, net list and named
// port already replaced by set IDs. A rule matches a packet when every
// field that is set matches.
type Rule struct {
	// Index is the rule's position in the resource's ingress or egress
	// list, for traces and logs.
	Index  int
	Action string
	// IPVersion 4 or 6 limits the rule to one family; 0 is both.
	IPVersion int
	// Protocol, when non-nil, must equal the packet's L4 protocol number;
	// NotProtocol, when non-nil, must differ from it.
	Protocol, NotProtocol *uint8
	// ICMP and NotICMP match ICMP (Protocol 1) or ICMPv6 (Protocol 58)
	// type and code.
	ICMP, NotICMP *ICMPMatch
	Src, Dst      Match
}

// ICMPMatch matches an ICMP type and, when Code is set, code.
type ICMPMatch struct {
	Type uint8
	Code *uint8
}

// Match is the source or destination half of a rule.
type Match struct {
	// Sets: the address must be in every listed set (AddrSet). A rule's
	// nets and its selector each become one set.
	Sets []string
	// Ports and NamedPortSet together are the positive port match: the
	// port must be in one of Ports, or (address, protocol, port) must be
	// in NamedPortSet (an AddrPortSet). Both empty: any port.
	Ports        []PortRange
	NamedPortSet string
	// Not is the negative half; nil when there is none, as in most rules.
	// (A compiled rule lives as long as its policy is in use, and the
	// negative half inline made every rule a third larger.)
	Not *NotMatch
}

// NotMatch is the negative half of a Match: the address must be in none
// of Sets, the port in none of Ports and (address, protocol, port) not in
// NamedPortSet.
type NotMatch struct {
	Sets         []string
	Ports        []PortRange
	NamedPortSet string
}

// NotSets returns the sets the address must be in none of.
func (m *Match) NotSets() []string {
	if m.Not == nil {
		return nil
	}
	return m.Not.Sets
}

// NotPorts returns the port ranges the port must be in none of.
func (m *Match) NotPorts() []PortRange {
	if m.Not == nil {
		return nil
	}
	return m.Not.Ports
}

// NotNamedPortSet returns the named-port set (address, protocol, port)
// must not be in, or "".
func (m *Match) NotNamedPortSet() string {
	if m.Not == nil {
		return ""
	}
	return m.Not.NamedPortSet
}

// PortRange is an inclusive range of ports; Min == Max for one port.
type PortRange struct{ Min, Max uint16 }

// Set kinds.
const (
	// AddrSet members are address prefixes (a /32 or /128 for an
	// endpoint's address, any prefix for a network set's nets).
	AddrSet = "addr"
	// AddrPortSet members are (address, protocol, port) triples: named
	// ports resolved on each endpoint.
	AddrPortSet = "addrport"
)

// Set is a named set of addresses, or of address-protocol-port triples,
// shared by every rule that uses the same selector, net list or named
// port. Members are sorted (prefixes by address then length; triples by
// address, protocol, port) and without duplicates; prefixes may overlap
// (a network set may list 10.0.0.0/8 and 10.1.0.0/16) and the renderer
// merges them.
type Set struct {
	ID   string
	Kind string // AddrSet or AddrPortSet
	// What the set stands for, for `nft list` comments and traces, e.g.
	// `selector role == "db"` or `nets 10.0.0.0/8,192.168.0.0/16`.
	Describe string
	Prefixes []netip.Prefix // AddrSet
	Triples  []AddrPort     // AddrPortSet
}

// AddrPort is one member of an AddrPortSet.
type AddrPort struct {
	Addr     netip.Addr
	Protocol uint8
	Port     uint16
}

// Config is the host-wide desired state.
type Config struct {
	// EndpointToHostAction is what happens to traffic from a workload to
	// the host itself once the workload's egress policy allowed it:
	// "Accept" (the default), "Drop" or "Return" (continue with the host's
	// own input rules and HostEndpoint policy).
	EndpointToHostAction string
	// FailsafeInbound and FailsafeOutbound are accepted on host endpoints
	// before any policy.
	FailsafeInbound, FailsafeOutbound []ProtoPort
	// MasqPools are the CIDRs of pools with natOutgoing; AllPools every
	// pool's CIDR. Traffic from a MasqPool address to an address in no
	// pool is masqueraded.
	MasqPools, AllPools []netip.Prefix
}

// ProtoPort is a failsafe port.
type ProtoPort struct {
	Protocol uint8
	Port     uint16
	// Net, when valid, limits the failsafe to peers in it.
	Net netip.Prefix
}

// Delta names what changed since the previous Delta: a reconciler looks
// the names up in the new State (absent means removed) and compares with
// what it last programmed. A full resync ignores it and compares all.
type Delta struct {
	Endpoints     []string // Endpoint names
	HostEndpoints []string // HostEndpoint interface names
	Chains        []string
	Sets          []string
	Config        bool
	// Routes are the destinations whose Route changed; VXLAN says a
	// VXLAN device or its peers changed.
	Routes []netip.Prefix
	VXLAN  bool
	// BGP says the BGP speaker's desired state changed.
	BGP bool
}

// Empty reports whether nothing changed.
func (d Delta) Empty() bool {
	return len(d.Endpoints) == 0 && len(d.HostEndpoints) == 0 && len(d.Chains) == 0 && len(d.Sets) == 0 && !d.Config &&
		len(d.Routes) == 0 && !d.VXLAN && !d.BGP
}

// Policy reports whether the delta touches what nftables programs.
func (d Delta) Policy() bool {
	return len(d.Endpoints) != 0 || len(d.HostEndpoints) != 0 || len(d.Chains) != 0 || len(d.Sets) != 0 || d.Config
}
