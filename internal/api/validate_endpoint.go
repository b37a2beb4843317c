package api

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// endpointPortProtocols are the protocols a named endpoint port may use.
var endpointPortProtocols = []string{ProtocolTCP, ProtocolUDP, ProtocolSCTP}

// Validate checks the endpoint's identity, host interface, addresses,
// profiles and named ports.
func (w *WorkloadEndpoint) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &w.Metadata, nameDNS)
	s := &w.Spec
	if s.Node == "" {
		fe.add("spec.node", "must be set to the name of the endpoint's host")
	}
	if s.Orchestrator == "" {
		fe.add("spec.orchestrator", "must be set (e.g. %q, %q or %q)", OrchestratorMesos, OrchestratorCNI, OrchestratorDocker)
	}
	if s.Workload == "" && s.ContainerID == "" {
		fe.add("spec.workload", "workload or containerID must be set")
	}
	if s.Endpoint == "" {
		fe.add("spec.endpoint", "must be set to the container-side interface name (e.g. \"eth0\")")
	}
	validateIfName(&fe, "spec.interfaceName", s.InterfaceName, false)
	if s.MAC != "" {
		if _, err := net.ParseMAC(s.MAC); err != nil {
			fe.add("spec.mac", "%q is not a valid MAC address (expected e.g. \"ee:ee:ee:ee:ee:ee\")", s.MAC)
		}
	}
	addrs := map[netip.Addr]bool{}
	for i, n := range s.IPNetworks {
		p, err := parseCIDROrIP(n)
		switch {
		case err != nil:
			fe.add(pindex("spec.ipNetworks", i), "%s", err.Error())
		case p.Bits() != p.Addr().BitLen():
			fe.add(pindex("spec.ipNetworks", i), "%s: must be a single address (/%d)", n, p.Addr().BitLen())
		default:
			addrs[p.Addr()] = true
		}
	}
	for i, nat := range s.IPNATs {
		path := pindex("spec.ipNATs", i)
		validateIP(&fe, pfield(path, "externalIP"), nat.ExternalIP, 0)
		a, err := netip.ParseAddr(nat.InternalIP)
		switch {
		case err != nil:
			fe.add(pfield(path, "internalIP"), "%q is not a valid IP address", nat.InternalIP)
		case !addrs[a.Unmap()]:
			fe.add(pfield(path, "internalIP"), "%s is not one of the endpoint's ipNetworks", nat.InternalIP)
		}
	}
	if s.IPv4Gateway != "" {
		validateIP(&fe, "spec.ipv4Gateway", s.IPv4Gateway, 4)
	}
	if s.IPv6Gateway != "" {
		validateIP(&fe, "spec.ipv6Gateway", s.IPv6Gateway, 6)
	}
	validateProfileRefs(&fe, "spec.profiles", s.Profiles)
	validateEndpointPorts(&fe, "spec.ports", s.Ports)
	return fe.result(w)
}

// Validate checks the host endpoint: its node, an interface name or
// expected IPs, profiles and named ports.
func (h *HostEndpoint) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &h.Metadata, nameDNS)
	s := &h.Spec
	if s.Node == "" {
		fe.add("spec.node", "must be set to the name of the endpoint's host")
	}
	if s.InterfaceName == "" && len(s.ExpectedIPs) == 0 {
		fe.add("spec.interfaceName", "interfaceName or expectedIPs must be set")
	}
	validateIfName(&fe, "spec.interfaceName", s.InterfaceName, true)
	for i, ip := range s.ExpectedIPs {
		validateIP(&fe, pindex("spec.expectedIPs", i), ip, 0)
	}
	validateProfileRefs(&fe, "spec.profiles", s.Profiles)
	validateEndpointPorts(&fe, "spec.ports", s.Ports)
	return fe.result(h)
}

// validateIfName checks a Linux interface name: at most 15 bytes, not "."
// or "..", and no '/', ':' or whitespace. A host endpoint may name "*",
// meaning all of the host's interfaces, as in Calico.
func validateIfName(fe *fieldErrors, path, name string, allowStar bool) {
	if name == "" || allowStar && name == "*" {
		return
	}
	switch {
	case len(name) > 15:
		fe.add(path, "%q is %d characters long: Linux interface names have at most 15", name, len(name))
	case name == "." || name == "..":
		fe.add(path, "%q is not a valid Linux interface name", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		fe.add(path, "%q is not a valid Linux interface name: '/', ':' and whitespace are not allowed", name)
	}
}

// validateEndpointPorts checks an endpoint's ports: a protocol of TCP,
// UDP or SCTP and a port number 1-65535. An entry is a named port (a
// valid name, each name and protocol pair once), a port mapping (hostPort
// set: traffic to that host port goes to port, as Mesos's port_mappings
// ask), or both. A port mapping needs no name, and each hostPort and
// protocol pair is mapped once.
func validateEndpointPorts(fe *fieldErrors, path string, ports []EndpointPort) {
	seen := map[string]bool{}
	hostPorts := map[string]int{}
	for i, p := range ports {
		pp := pindex(path, i)
		if p.Name == "" {
			if p.HostPort == 0 {
				fe.add(pfield(pp, "name"), "must be set (only a port mapping, with hostPort set, may have no name)")
			}
		} else if msg := portNameProblem(p.Name); msg != "" {
			fe.add(pfield(pp, "name"), "%s", msg)
		}
		if c, ok := canonical(p.Protocol.Name, endpointPortProtocols); p.Protocol.Name == "" || !ok || c != p.Protocol.Name {
			fe.add(pfield(pp, "protocol"), "%q: must be one of %s", p.Protocol.String(), strings.Join(endpointPortProtocols, ", "))
		}
		if p.Port == 0 {
			fe.add(pfield(pp, "port"), "must be set to a port number 1-65535")
		}
		if p.HostIP != "" {
			validateIP(fe, pfield(pp, "hostIP"), p.HostIP, 0)
		}
		k := fmt.Sprintf("%s/%s", p.Name, p.Protocol.String())
		if p.Name != "" && seen[k] {
			fe.add(pfield(pp, "name"), "%q with protocol %s is listed twice", p.Name, p.Protocol.String())
		}
		seen[k] = true
		if p.HostPort != 0 {
			hk := fmt.Sprintf("%d/%s", p.HostPort, strings.ToUpper(p.Protocol.String()))
			if j, dup := hostPorts[hk]; dup {
				fe.add(pfield(pp, "hostPort"), "%d with protocol %s is already mapped by %s", p.HostPort, p.Protocol.String(), pindex(path, j))
			} else {
				hostPorts[hk] = i
			}
		}
	}
}
