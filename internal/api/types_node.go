package api

// Node is a host running calyx-node.
type Node struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
}

// NodeSpec is a host's addresses and BGP settings.
type NodeSpec struct {
	BGP                 *NodeBGPSpec `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr string       `json:"ipv4VXLANTunnelAddr,omitempty"`
	IPv6VXLANTunnelAddr string       `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr  string       `json:"vxlanTunnelMACAddr,omitempty"`
	OrchRefs            []OrchRef    `json:"orchRefs,omitempty"`
}

// NodeBGPSpec is a host's BGP identity.
type NodeBGPSpec struct {
	IPv4Address             string    `json:"ipv4Address,omitempty"` // CIDR: address/prefix
	IPv6Address             string    `json:"ipv6Address,omitempty"`
	ASNumber                *ASNumber `json:"asNumber,omitempty"`
	IPv4IPIPTunnelAddr      string    `json:"ipv4IPIPTunnelAddr,omitempty"`
	RouteReflectorClusterID string    `json:"routeReflectorClusterID,omitempty"`
}

// OrchRef names the host in an orchestrator (e.g. a Mesos agent ID).
type OrchRef struct {
	Orchestrator string `json:"orchestrator"`
	NodeName     string `json:"nodeName,omitempty"`
}

// BGPPeer is a BGP session to configure: global (no node or nodeSelector)
// or for the selected nodes.
type BGPPeer struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     BGPPeerSpec `json:"spec"`
}

// BGPPeerSpec is one peering.
type BGPPeerSpec struct {
	Node                string   `json:"node,omitempty"`
	PeerIP              string   `json:"peerIP,omitempty"`
	ASNumber            ASNumber `json:"asNumber,omitempty"`
	NodeSelector        string   `json:"nodeSelector,omitempty"`
	PeerSelector        string   `json:"peerSelector,omitempty"`
	KeepOriginalNextHop bool     `json:"keepOriginalNextHop,omitempty"`
	SourceAddress       string   `json:"sourceAddress,omitempty"`
}

// BGPConfiguration holds BGP settings: "default" for the cluster, or
// "node.<name>" for one host.
type BGPConfiguration struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta           `json:"metadata"`
	Spec     BGPConfigurationSpec `json:"spec"`
}

// BGPConfigurationSpec is the BGP settings.
type BGPConfigurationSpec struct {
	LogSeverityScreen     string            `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled *bool             `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber              *ASNumber         `json:"asNumber,omitempty"`
	ListenPort            int               `json:"listenPort,omitempty"`
	ServiceClusterIPs     []ServiceCIDR     `json:"serviceClusterIPs,omitempty"`
	ServiceExternalIPs    []ServiceCIDR     `json:"serviceExternalIPs,omitempty"`
	Communities           []Community       `json:"communities,omitempty"`
	PrefixAdvertisements  []PrefixAdvertise `json:"prefixAdvertisements,omitempty"`
}

// ServiceCIDR is an extra prefix to advertise.
type ServiceCIDR struct {
	CIDR string `json:"cidr"`
}

// Community names a BGP community value.
type Community struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// PrefixAdvertise attaches communities to a prefix.
type PrefixAdvertise struct {
	CIDR        string   `json:"cidr"`
	Communities []string `json:"communities,omitempty"`
}

// NodeConfiguration holds calyx-node settings: "default" for the cluster,
// or "node.<name>" for one host. Calico's FelixConfiguration is read as
// this kind.
type NodeConfiguration struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta            `json:"metadata"`
	Spec     NodeConfigurationSpec `json:"spec"`
}

// NodeConfigurationSpec is the agent settings. Field names follow Felix's.
type NodeConfigurationSpec struct {
	LogSeverityScreen           string       `json:"logSeverityScreen,omitempty"`
	InterfacePrefix             string       `json:"interfacePrefix,omitempty"`
	DefaultEndpointToHostAction string       `json:"defaultEndpointToHostAction,omitempty"`
	IPv6Support                 *bool        `json:"ipv6Support,omitempty"`
	VXLANEnabled                *bool        `json:"vxlanEnabled,omitempty"`
	VXLANVNI                    *int         `json:"vxlanVNI,omitempty"`
	VXLANPort                   *int         `json:"vxlanPort,omitempty"`
	VXLANMTU                    *int         `json:"vxlanMTU,omitempty"`
	RouteRefreshInterval        string       `json:"routeRefreshInterval,omitempty"`
	NftablesRefreshInterval     string       `json:"nftablesRefreshInterval,omitempty"`
	EndpointGCGracePeriod       string       `json:"endpointGCGracePeriod,omitempty"`
	FailsafeInboundHostPorts    *[]ProtoPort `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts   *[]ProtoPort `json:"failsafeOutboundHostPorts,omitempty"`
	PrometheusMetricsEnabled    *bool        `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsPort       *int         `json:"prometheusMetricsPort,omitempty"`
	HealthEnabled               *bool        `json:"healthEnabled,omitempty"`
	HealthPort                  *int         `json:"healthPort,omitempty"`
	ReportingInterval           string       `json:"reportingInterval,omitempty"`
}

// ProtoPort is a protocol and port, as in Felix's failsafe port lists.
type ProtoPort struct {
	Protocol string `json:"protocol"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}
