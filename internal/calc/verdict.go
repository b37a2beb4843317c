package calc

import (
	"fmt"
	"net/netip"
	"slices"
)

// Packet is what Verdict and Trace judge: one packet of a flow.
type Packet struct {
	Src, Dst         netip.Addr
	Protocol         uint8 // 6 tcp, 17 udp, 132 sctp, 1 icmp, 58 icmpv6, ...
	SrcPort, DstPort uint16
	// ICMPType and ICMPCode are used when Protocol is 1 or 58.
	ICMPType, ICMPCode uint8
	// Established marks a packet of a flow conntrack already accepted;
	// Trace always judges a new flow.
	Established bool
}

// Reasons for a Decision.
const (
	// ReasonRule: a rule decided; Kind, Name, Rule and Action say which.
	ReasonRule = "rule"
	// ReasonEndOfTier: policies applied and none decided (or passed).
	ReasonEndOfTier = "end of tier"
	// ReasonNoProfile: no profile rule decided (including no profiles).
	ReasonNoProfile = "no profile matched"
	// ReasonEstablished: the flow was already accepted.
	ReasonEstablished = "established"
	// ReasonFailsafe: a host endpoint's failsafe port.
	ReasonFailsafe = "failsafe"
	// ReasonUnknownEndpoint: no such local endpoint; its traffic is
	// dropped, as for an interface calc does not know.
	ReasonUnknownEndpoint = "unknown endpoint"
)

// Decision is the outcome at one endpoint in one direction.
type Decision struct {
	Allowed bool
	Reason  string // one of the Reason* constants
	// For ReasonRule: the deciding chain's kind (KindPolicy or
	// KindProfile) and name, the rule's index in the resource, its
	// action, and whether the chain stands for a missing profile.
	Kind, Name string
	Rule       int
	Action     string
	Missing    bool
}

// String renders the decision for traces, e.g. "policy allow-fe rule 0
// (Allow)" or "no policy matched (end of tier)".
func (d Decision) String() string {
	switch d.Reason {
	case ReasonRule:
		s := fmt.Sprintf("%s %s rule %d (%s)", d.Kind, d.Name, d.Rule, d.Action)
		if d.Missing {
			s += ", profile does not exist"
		}
		return s
	case ReasonEndOfTier:
		return "no policy matched (end of tier)"
	case ReasonNoProfile:
		return "no profile matched"
	case ReasonEstablished:
		return "established flow"
	case ReasonFailsafe:
		return "failsafe port"
	case ReasonUnknownEndpoint:
		return "unknown endpoint"
	}
	return d.Reason
}

// Verdict interprets s for one packet at one local endpoint (a
// WorkloadEndpoint name, or a host endpoint's interface name) in one
// direction (Ingress: to the endpoint; Egress: from it), with the
// semantics of calico-design.md §6.2 "Endpoint chain" that the nftables
// renderer implements:
//
//  1. an established flow is accepted;
//  2. (host endpoints) failsafe ports are accepted;
//  3. policies in order, rules in order: Allow and Deny decide, Log goes
//     on, Pass skips to the profiles; none decided: drop (end of tier);
//  4. profiles in order: Allow and Deny decide, Log goes on, Pass leaves
//     that profile; none decided: drop.
//
// A rule's ICMP or NotICMP match requires an ICMP packet, and port matches
// require TCP, UDP or SCTP, as the kernel's protocol dependencies do.
func (s *State) Verdict(endpoint, dir string, p Packet) Decision {
	if p.Established {
		return Decision{Allowed: true, Reason: ReasonEstablished}
	}
	var tier Tier
	if ep := s.Endpoints[endpoint]; ep != nil {
		tier = ep.Ingress
		if dir == Egress {
			tier = ep.Egress
		}
	} else if he := s.HostEndpoints[endpoint]; he != nil {
		tier = he.Ingress
		if dir == Egress {
			tier = he.Egress
		}
		if s.failsafe(dir, p) {
			return Decision{Allowed: true, Reason: ReasonFailsafe}
		}
	} else {
		return Decision{Reason: ReasonUnknownEndpoint}
	}
	if len(tier.Policies) > 0 {
		passed := false
		for _, id := range tier.Policies {
			d, verdict := s.runChain(id, p)
			if verdict == chainDecided {
				return d
			}
			if verdict == chainPassed {
				passed = true
				break
			}
		}
		if !passed {
			return Decision{Reason: ReasonEndOfTier}
		}
	}
	for _, id := range tier.Profiles {
		if d, verdict := s.runChain(id, p); verdict == chainDecided {
			return d
		}
	}
	return Decision{Reason: ReasonNoProfile}
}

func (s *State) failsafe(dir string, p Packet) bool {
	list, peer := s.Config.FailsafeInbound, p.Src
	if dir == Egress {
		list, peer = s.Config.FailsafeOutbound, p.Dst
	}
	for _, f := range list {
		if f.Protocol == p.Protocol && f.Port == p.DstPort && (!f.Net.IsValid() || f.Net.Contains(peer)) {
			return true
		}
	}
	return false
}

type chainVerdict int

const (
	chainNoMatch chainVerdict = iota
	chainDecided
	chainPassed
)

func (s *State) runChain(id string, p Packet) (Decision, chainVerdict) {
	ch := s.Chains[id]
	if ch == nil { // not in State: the renderer would have nothing to jump to
		return Decision{Reason: ReasonRule, Kind: "chain", Name: id, Action: ActionDeny}, chainDecided
	}
	for i := range ch.Rules {
		r := &ch.Rules[i]
		if !s.ruleMatches(r, p) {
			continue
		}
		d := Decision{Reason: ReasonRule, Kind: ch.Kind, Name: ch.Name, Rule: r.Index, Action: r.Action, Missing: ch.Missing}
		switch r.Action {
		case ActionAllow:
			d.Allowed = true
			return d, chainDecided
		case ActionDeny:
			return d, chainDecided
		case ActionPass:
			return d, chainPassed
		}
		// Log: not terminal.
	}
	return Decision{}, chainNoMatch
}

func (s *State) ruleMatches(r *Rule, p Packet) bool {
	if r.IPVersion == 4 && !p.Src.Unmap().Is4() || r.IPVersion == 6 && !p.Src.Unmap().Is6() {
		return false
	}
	if r.Protocol != nil && *r.Protocol != p.Protocol || r.NotProtocol != nil && *r.NotProtocol == p.Protocol {
		return false
	}
	isICMP := p.Protocol == 1 || p.Protocol == 58
	if r.ICMP != nil && (!isICMP || !r.ICMP.matches(p)) {
		return false
	}
	if r.NotICMP != nil && (!isICMP || r.NotICMP.matches(p)) {
		return false
	}
	return s.sideMatches(&r.Src, p.Src, p.SrcPort, p.Protocol) && s.sideMatches(&r.Dst, p.Dst, p.DstPort, p.Protocol)
}

func (m *ICMPMatch) matches(p Packet) bool {
	return m.Type == p.ICMPType && (m.Code == nil || *m.Code == p.ICMPCode)
}

func (s *State) sideMatches(m *Match, a netip.Addr, port uint16, proto uint8) bool {
	a = a.Unmap()
	for _, id := range m.Sets {
		if !s.inAddrSet(id, a) {
			return false
		}
	}
	for _, id := range m.NotSets() {
		if s.inAddrSet(id, a) {
			return false
		}
	}
	hasPorts := proto == 6 || proto == 17 || proto == 132
	if len(m.Ports) > 0 || m.NamedPortSet != "" {
		if !hasPorts || !inRanges(m.Ports, port) && !s.inPortSet(m.NamedPortSet, a, proto, port) {
			return false
		}
	}
	if len(m.NotPorts()) > 0 || m.NotNamedPortSet() != "" {
		if !hasPorts || inRanges(m.NotPorts(), port) || s.inPortSet(m.NotNamedPortSet(), a, proto, port) {
			return false
		}
	}
	return true
}

func inRanges(rs []PortRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.Min && port <= r.Max {
			return true
		}
	}
	return false
}

func (s *State) inAddrSet(id string, a netip.Addr) bool {
	set := s.Sets[id]
	if set == nil {
		return false
	}
	for _, p := range set.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *State) inPortSet(id string, a netip.Addr, proto uint8, port uint16) bool {
	set := s.Sets[id]
	if id == "" || set == nil {
		return false
	}
	_, found := slices.BinarySearchFunc(set.Triples, AddrPort{Addr: a, Protocol: proto, Port: port}, compareAddrPort)
	return found
}
