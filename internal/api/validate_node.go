package api

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// interfacePrefixRE is the rule for NodeConfiguration.interfacePrefix: a
// short prefix that still leaves room for the 10 hex characters of a
// workload's veth name within Linux's 15-character limit.
var interfacePrefixRE = regexp.MustCompile(`^[a-z0-9]{1,5}$`)

// Validate checks the node's addresses, AS number and orchestrator refs.
func (n *Node) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &n.Metadata, nameDNS)
	s := &n.Spec
	if b := s.BGP; b != nil {
		validateHostCIDR(&fe, "spec.bgp.ipv4Address", b.IPv4Address, 4)
		validateHostCIDR(&fe, "spec.bgp.ipv6Address", b.IPv6Address, 6)
		if b.ASNumber != nil && *b.ASNumber == 0 {
			fe.add("spec.bgp.asNumber", "0: must be 1-4294967295")
		}
		if b.IPv4IPIPTunnelAddr != "" {
			validateIP(&fe, "spec.bgp.ipv4IPIPTunnelAddr", b.IPv4IPIPTunnelAddr, 4)
		}
		if b.RouteReflectorClusterID != "" {
			if a, err := netip.ParseAddr(b.RouteReflectorClusterID); err != nil || !a.Is4() {
				fe.add("spec.bgp.routeReflectorClusterID", "%q: must be written as an IPv4 address (e.g. \"224.0.0.1\")", b.RouteReflectorClusterID)
			}
		}
	}
	if s.IPv4VXLANTunnelAddr != "" {
		validateIP(&fe, "spec.ipv4VXLANTunnelAddr", s.IPv4VXLANTunnelAddr, 4)
	}
	if s.IPv6VXLANTunnelAddr != "" {
		validateIP(&fe, "spec.ipv6VXLANTunnelAddr", s.IPv6VXLANTunnelAddr, 6)
	}
	if s.VXLANTunnelMACAddr != "" {
		if _, err := net.ParseMAC(s.VXLANTunnelMACAddr); err != nil {
			fe.add("spec.vxlanTunnelMACAddr", "%q is not a valid MAC address (expected e.g. \"66:f3:9a:01:02:03\")", s.VXLANTunnelMACAddr)
		}
	}
	for i, r := range s.OrchRefs {
		if r.Orchestrator == "" {
			fe.add(pfield(pindex("spec.orchRefs", i), "orchestrator"), "must be set")
		}
	}
	return fe.result(n)
}

// validateHostCIDR checks an interface address written as address/prefix
// (host bits expected) of the given family.
func validateHostCIDR(fe *fieldErrors, path, s string, want int) {
	if s == "" {
		return
	}
	p, err := parseCIDR(s)
	switch {
	case err != nil:
		fe.add(path, "%q is not an IPv%d address with prefix length (expected e.g. %s)", s, want, map[int]string{4: "10.0.0.1/24", 6: "fd00::1/64"}[want])
	case family(p.Addr()) != want:
		fe.add(path, "%q is not an IPv%d address", s, want)
	}
}

// Validate checks the peering: a peer IP (with an optional port) and AS
// number, or a peerSelector; node and nodeSelector at most one.
func (b *BGPPeer) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &b.Metadata, nameDNS)
	s := &b.Spec
	if s.Node != "" && s.NodeSelector != "" {
		fe.add("spec.nodeSelector", "node and nodeSelector cannot both be set")
	}
	validateSelector(&fe, "spec.nodeSelector", s.NodeSelector)
	validateSelector(&fe, "spec.peerSelector", s.PeerSelector)
	switch {
	case s.PeerIP != "" && s.PeerSelector != "":
		fe.add("spec.peerSelector", "peerIP and peerSelector cannot both be set")
	case s.PeerIP == "" && s.PeerSelector == "":
		fe.add("spec.peerIP", "peerIP or peerSelector must be set")
	case s.PeerIP != "":
		validatePeerIP(&fe, "spec.peerIP", s.PeerIP)
		if s.ASNumber == 0 {
			fe.add("spec.asNumber", "must be set to the peer's AS number (1-4294967295)")
		}
	case s.ASNumber != 0:
		fe.add("spec.asNumber", "must not be set with peerSelector: the selected nodes' AS numbers are used")
	}
	validateEnum(&fe, "spec.sourceAddress", s.SourceAddress, sourceAddrs, true)
	return fe.result(b)
}

// validatePeerIP accepts "10.0.0.1", "fd00::1", "10.0.0.1:1790" and
// "[fd00::1]:1790".
func validatePeerIP(fe *fieldErrors, path, s string) {
	if _, err := netip.ParseAddr(s); err == nil && !strings.Contains(s, "%") {
		return
	}
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil || ap.Addr().Zone() != "":
		fe.add(path, "%q is not an IP address or ip:port (expected e.g. \"10.0.0.1\", \"10.0.0.1:179\" or \"[fd00::1]:179\")", s)
	case ap.Port() == 0:
		fe.add(path, "%q: port must be 1-65535", s)
	}
}

// Validate checks the BGP settings: severity, port, advertised CIDRs and
// communities.
func (b *BGPConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &b.Metadata, nameDefaultOrNode)
	s := &b.Spec
	validateEnum(&fe, "spec.logSeverityScreen", s.LogSeverityScreen, logSeverities, true)
	if s.ASNumber != nil && *s.ASNumber == 0 {
		fe.add("spec.asNumber", "0: must be 1-4294967295")
	}
	if s.ListenPort < 0 || s.ListenPort > 65535 {
		fe.add("spec.listenPort", "%d is out of range: must be 1-65535", s.ListenPort)
	}
	for _, f := range []struct {
		path  string
		cidrs []ServiceCIDR
	}{{"spec.serviceClusterIPs", s.ServiceClusterIPs}, {"spec.serviceExternalIPs", s.ServiceExternalIPs}} {
		for i, c := range f.cidrs {
			validateNetwork(&fe, pfield(pindex(f.path, i), "cidr"), c.CIDR)
		}
	}
	names := map[string]bool{}
	for i, c := range s.Communities {
		path := pindex("spec.communities", i)
		switch {
		case c.Name == "":
			fe.add(pfield(path, "name"), "must be set")
		case names[c.Name]:
			fe.add(pfield(path, "name"), "%q is defined twice", c.Name)
		}
		names[c.Name] = true
		if msg := communityProblem(c.Value); msg != "" {
			fe.add(pfield(path, "value"), "%s", msg)
		}
	}
	for i, pa := range s.PrefixAdvertisements {
		path := pindex("spec.prefixAdvertisements", i)
		validateNetwork(&fe, pfield(path, "cidr"), pa.CIDR)
		for j, c := range pa.Communities {
			if names[c] {
				continue
			}
			if communityProblem(c) != "" {
				fe.add(pindex(pfield(path, "communities"), j), "%q is neither a community defined in spec.communities nor a community value \"aa:nn\" or \"aa:nn:mm\"", c)
			}
		}
	}
	return fe.result(b)
}

// validateNetwork checks a required network written as a CIDR (not a bare
// IP), without host bits.
func validateNetwork(fe *fieldErrors, path, s string) {
	if s == "" {
		fe.add(path, "must be set")
		return
	}
	p, err := parseCIDR(s)
	switch {
	case err != nil:
		fe.add(path, "%s", err.Error())
	case p.Masked() != p:
		fe.add(path, "%s has host bits set; did you mean %s?", s, p.Masked())
	}
}

// communityProblem checks a standard community "aa:nn" (each 0-65535) or a
// large community "aa:nn:mm" (each 0-4294967295).
func communityProblem(v string) string {
	parts := strings.Split(v, ":")
	bits := 0
	switch len(parts) {
	case 2:
		bits = 16
	case 3:
		bits = 32
	default:
		return strconv.Quote(v) + " is not a community value: expected \"aa:nn\" (numbers 0-65535) or \"aa:nn:mm\" (numbers 0-4294967295)"
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, bits); err != nil {
			if bits == 16 {
				return strconv.Quote(v) + " is not a standard community: expected \"aa:nn\" with numbers 0-65535"
			}
			return strconv.Quote(v) + " is not a large community: expected \"aa:nn:mm\" with numbers 0-4294967295"
		}
	}
	return ""
}

// Validate checks the agent settings.
func (n *NodeConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &n.Metadata, nameDefaultOrNode)
	s := &n.Spec
	validateEnum(&fe, "spec.logSeverityScreen", s.LogSeverityScreen, logSeverities, true)
	validateEnum(&fe, "spec.defaultEndpointToHostAction", s.DefaultEndpointToHostAction, hostActions, true)
	if s.InterfacePrefix != "" && !interfacePrefixRE.MatchString(s.InterfacePrefix) {
		fe.add("spec.interfacePrefix", "%q: must be 1-5 lower-case letters and digits", s.InterfacePrefix)
	}
	validateIntRange(&fe, "spec.vxlanVNI", s.VXLANVNI, 1, 16777215)
	validateIntRange(&fe, "spec.vxlanPort", s.VXLANPort, 1, 65535)
	validateIntRange(&fe, "spec.vxlanMTU", s.VXLANMTU, 68, 9000)
	validateIntRange(&fe, "spec.prometheusMetricsPort", s.PrometheusMetricsPort, 1, 65535)
	validateIntRange(&fe, "spec.healthPort", s.HealthPort, 1, 65535)
	validateDuration(&fe, "spec.routeRefreshInterval", s.RouteRefreshInterval)
	validateDuration(&fe, "spec.nftablesRefreshInterval", s.NftablesRefreshInterval)
	validateDuration(&fe, "spec.endpointGCGracePeriod", s.EndpointGCGracePeriod)
	validateDuration(&fe, "spec.reportingInterval", s.ReportingInterval)
	for _, f := range []struct {
		path  string
		ports *[]ProtoPort
	}{{"spec.failsafeInboundHostPorts", s.FailsafeInboundHostPorts}, {"spec.failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts}} {
		if f.ports == nil {
			continue
		}
		for i, pp := range *f.ports {
			path := pindex(f.path, i)
			validateEnum(&fe, pfield(path, "protocol"), pp.Protocol, failsafeProt, false)
			if pp.Port == 0 {
				fe.add(pfield(path, "port"), "must be set to a port number 1-65535")
			}
			if pp.Net != "" {
				validateNetwork(&fe, pfield(path, "net"), pp.Net)
			}
		}
	}
	return fe.result(n)
}
