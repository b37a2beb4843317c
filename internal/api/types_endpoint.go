package api

// Orchestrator names recorded on workload endpoints.
const (
	OrchestratorCNI    = "cni"
	OrchestratorMesos  = "mesos"
	OrchestratorDocker = "libnetwork"
)

// WorkloadEndpoint is one container interface: its addresses, host veth and
// profiles. Its labels (metadata.labels) are what policy selects on.
type WorkloadEndpoint struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta           `json:"metadata"`
	Spec     WorkloadEndpointSpec `json:"spec"`
}

// WorkloadEndpointSpec is an endpoint's identity and addresses.
type WorkloadEndpointSpec struct {
	Orchestrator  string         `json:"orchestrator,omitempty"`
	Workload      string         `json:"workload,omitempty"`
	Node          string         `json:"node,omitempty"`
	ContainerID   string         `json:"containerID,omitempty"`
	Pod           string         `json:"pod,omitempty"`
	Endpoint      string         `json:"endpoint,omitempty"`
	InterfaceName string         `json:"interfaceName,omitempty"`
	MAC           string         `json:"mac,omitempty"`
	IPNetworks    []string       `json:"ipNetworks,omitempty"`
	IPNATs        []IPNAT        `json:"ipNATs,omitempty"`
	IPv4Gateway   string         `json:"ipv4Gateway,omitempty"`
	IPv6Gateway   string         `json:"ipv6Gateway,omitempty"`
	Profiles      []string       `json:"profiles,omitempty"`
	Ports         []EndpointPort `json:"ports,omitempty"`
}

// IPNAT is a 1:1 NAT mapping for an endpoint address.
type IPNAT struct {
	InternalIP string `json:"internalIP"`
	ExternalIP string `json:"externalIP"`
}

// EndpointPort is a named port an endpoint listens on, a port mapping
// (HostPort set: traffic to that port on the host's addresses goes to
// Port, as Mesos's port_mappings ask; no name needed), or both.
type EndpointPort struct {
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol"`
	Port     uint16   `json:"port"`
	HostPort uint16   `json:"hostPort,omitempty"`
	HostIP   string   `json:"hostIP,omitempty"`
}

// HostEndpoint is a host interface that policy applies to.
type HostEndpoint struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta       `json:"metadata"`
	Spec     HostEndpointSpec `json:"spec"`
}

// HostEndpointSpec names the host interface and its addresses.
type HostEndpointSpec struct {
	Node          string         `json:"node,omitempty"`
	InterfaceName string         `json:"interfaceName,omitempty"`
	ExpectedIPs   []string       `json:"expectedIPs,omitempty"`
	Profiles      []string       `json:"profiles,omitempty"`
	Ports         []EndpointPort `json:"ports,omitempty"`
}
