package localapi

import "time"

// DefaultSocket is where calyx-node serves the local API.
const DefaultSocket = "/run/calyx/calyx.sock"

// Paths of the local API. Every call is a POST of a JSON body, answered
// with 200 and a JSON body, or with an Error.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathStatus  = "/v1/status"
	// PathNodeStatus answers NodeStatusResponse (calyxctl node status).
	PathNodeStatus = "/v1/node/status"
	PathCNIAdd     = "/v1/cni/add"
	PathCNIReady   = "/v1/cni/ready"
	PathCNIDel     = "/v1/cni/del"
	PathCNICheck   = "/v1/cni/check"
	PathCNIGC      = "/v1/cni/gc"
	PathIPAMAdd    = "/v1/ipam/add"
	PathIPAMDel    = "/v1/ipam/del"
)

// Attachment names one container interface on one network. It is the key
// of everything calyx-node keeps for a CNI attachment: the IPAM handle is
// "<Network>.<ContainerID>.<IfName>".
type Attachment struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// Handle is the IPAM handle of the attachment.
func (a Attachment) Handle() string { return a.Network + "." + a.ContainerID + "." + a.IfName }

// IPAMRequest says which addresses an attachment wants.
type IPAMRequest struct {
	AssignIPv4 bool     `json:"assignIPv4"`
	AssignIPv6 bool     `json:"assignIPv6"`
	IPv4Pools  []string `json:"ipv4Pools,omitempty"`
	IPv6Pools  []string `json:"ipv6Pools,omitempty"`
	// RequestedIPs are specific addresses (CNI_ARGS IP=...).
	RequestedIPs []string `json:"requestedIPs,omitempty"`
}

// AddRequest starts a CNI ADD: allocate addresses, record the workload
// endpoint and create the network's profile on first use.
type AddRequest struct {
	Attachment
	IPAM IPAMRequest `json:"ipam"`
	// Netns is CNI_NETNS, recorded for diagnostics.
	Netns string `json:"netns,omitempty"`
	// Orchestrator is "mesos" when the call came from the Mesos CNI
	// isolator (args."org.apache.mesos" present), else "cni".
	Orchestrator string `json:"orchestrator"`
	// Labels become the endpoint's labels (already sanitised).
	Labels map[string]string `json:"labels,omitempty"`
	// MTU of the container interface; 0 means calyx-node's default.
	MTU int `json:"mtu,omitempty"`
	// PortMappings are the Mesos port mappings (network_info.port_mappings):
	// traffic to a host port on any of the host's addresses goes to the
	// container's port. They become the endpoint's spec.ports entries
	// with hostPort set.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// PluginCreatesVeth says that the plugin is creating the veth, host
	// end named HostIfName(handle) and up, while it asks. An endpoint that
	// exists already is then answered (Existing) without looking for its
	// host end: the plugin's create fails on an existing one, and the
	// plugin tells a duplicate ADD from one retried after a crash by
	// that. Meanwhile calyx-node programs the host side as soon as the
	// host end appears, so that READY usually finds it done.
	PluginCreatesVeth bool `json:"pluginCreatesVeth,omitempty"`
}

// PortMapping maps a host port to a container port.
type PortMapping struct {
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	// Protocol is "tcp", "udp" or "sctp".
	Protocol string `json:"protocol"`
}

// AddResponse tells the plugin how to build the container side.
type AddResponse struct {
	// Endpoint is the WorkloadEndpoint's name.
	Endpoint string `json:"endpoint"`
	// HostIfName is the host end of the veth ("calyx" + 10 hex).
	HostIfName string `json:"hostIfName"`
	// IPs are the container's addresses as /32 and /128 prefixes.
	IPs []string `json:"ips"`
	// Gateway4 and Gateway6 are the next hops the container routes via.
	Gateway4 string `json:"gateway4,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	MTU      int    `json:"mtu"`
	// ContainerMAC is the MAC the plugin gives the container end of the
	// veth ("02:..."), already recorded on the endpoint: a READY that
	// reports it costs calyx-node no datastore write. Empty from an older
	// calyx-node; an older plugin ignores it and reports the kernel's
	// MAC, which READY then records.
	ContainerMAC string `json:"containerMAC,omitempty"`
	// Existing says that the endpoint existed before this ADD, which
	// allocated nothing: a plugin that fails the ADD must not undo it.
	Existing bool `json:"existing,omitempty"`
}

// ReadyRequest finishes an ADD once the veth exists: calyx-node programs
// the host side (route, neighbour, proxy ARP, policy) and answers only when
// the endpoint can carry traffic. ContainerMAC is the container end's
// actual MAC; calyx-node writes it to the endpoint only when it differs
// from AddResponse.ContainerMAC.
type ReadyRequest struct {
	Attachment
	HostIfName   string `json:"hostIfName"`
	ContainerMAC string `json:"containerMAC"`
}

// DelRequest undoes an attachment. It succeeds when nothing is left,
// including when nothing was there.
type DelRequest struct {
	Attachment
	// PluginDeletesVeth says that the plugin is deleting the veth (its
	// container end, and with it the pair) while it asks: calyx-node then
	// removes the endpoint's routes and leaves the link, so that the
	// kernel's slow link deletion overlaps calyx-node's datastore work
	// instead of preceding it.
	PluginDeletesVeth bool `json:"pluginDeletesVeth,omitempty"`
	// DeferVethDelete lets calyx-node delete the veth after answering:
	// DEL answers once the endpoint's routes are gone and it is released,
	// and the kernel's slow link deletion follows (an ADD of the same
	// attachment waits for it).
	DeferVethDelete bool `json:"deferVethDelete,omitempty"`
}

// CheckRequest asks calyx-node to check the host side of an attachment.
type CheckRequest struct {
	Attachment
}

// CheckResponse reports the endpoint as calyx-node knows it, and what is
// wrong with its host side (empty when all is well).
type CheckResponse struct {
	Endpoint   string   `json:"endpoint"`
	HostIfName string   `json:"hostIfName"`
	IPs        []string `json:"ips"`
	Problems   []string `json:"problems,omitempty"`
}

// GCRequest releases every attachment of Network on this node that is not
// in Valid.
type GCRequest struct {
	Network string       `json:"network"`
	Valid   []Attachment `json:"valid"`
}

// GCResponse lists what was released.
type GCResponse struct {
	Released []Attachment `json:"released,omitempty"`
}

// IPAMAddRequest allocates addresses for calyx-ipam used as the IPAM plugin
// of another CNI plugin (e.g. bridge).
type IPAMAddRequest struct {
	Attachment
	IPAM IPAMRequest `json:"ipam"`
}

// IPAMAddResponse lists the allocated addresses, with the pools' prefix
// lengths so that a bridge-style plugin can configure its subnet.
type IPAMAddResponse struct {
	IPs []IPAMAddress `json:"ips"`
}

// IPAMAddress is one allocated address.
type IPAMAddress struct {
	// Address is the address with its pool's prefix length, e.g.
	// 10.65.0.7/16.
	Address string `json:"address"`
	// Gateway is the pool's first address, for plugins that need one.
	Gateway string `json:"gateway,omitempty"`
}

// IPAMDelRequest releases an attachment's addresses.
type IPAMDelRequest struct {
	Attachment
}

// StatusResponse says whether calyx-node can serve ADDs.
type StatusResponse struct {
	Ready   bool   `json:"ready"`
	Node    string `json:"node"`
	Message string `json:"message,omitempty"`
}

// NodeStatusResponse is what calyx-node programs and how it is doing:
// its datastore sync, its local endpoints, its VXLAN devices and peers,
// its routes to other hosts and its BGP sessions.
type NodeStatusResponse struct {
	Node      string          `json:"node"`
	Ready     bool            `json:"ready"`
	Message   string          `json:"message,omitempty"`
	Datastore DatastoreStatus `json:"datastore"`
	Endpoints []EndpointState `json:"endpoints"`
	VXLAN     []VXLANState    `json:"vxlan"`
	Routes    []RouteState    `json:"routes"`
	// BGP is empty while calyx-node runs no BGP speaker.
	BGP []BGPPeerState `json:"bgp"`
	// RoutingError is the last failure to program routes or VXLAN, if
	// the latest attempt failed.
	RoutingError string `json:"routingError,omitempty"`
}

// DatastoreStatus is the syncers' progress.
type DatastoreStatus struct {
	InSync     bool      `json:"inSync"`
	Revision   int64     `json:"revision"`
	LastUpdate time.Time `json:"lastUpdate"`
}

// EndpointState is one local workload endpoint.
type EndpointState struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses"`
}

// VXLANState is one VXLAN device and its peers.
type VXLANState struct {
	Device   string           `json:"device"`
	Address  string           `json:"address"`
	Underlay string           `json:"underlay"`
	VNI      int              `json:"vni"`
	Peers    []VXLANPeerState `json:"peers"`
}

// VXLANPeerState is another host's VXLAN endpoint.
type VXLANPeerState struct {
	Node     string `json:"node"`
	Address  string `json:"address"`
	MAC      string `json:"mac"`
	Underlay string `json:"underlay"`
}

// RouteState is one route to another host's addresses (or a blackhole
// for this host's own block).
type RouteState struct {
	Destination string `json:"destination"`
	Kind        string `json:"kind"` // local-block, native, vxlan
	Node        string `json:"node"`
	Via         string `json:"via,omitempty"`
	Device      string `json:"device,omitempty"`
}

// BGPPeerState is one BGP session.
type BGPPeerState struct {
	Peer       string    `json:"peer"`
	Type       string    `json:"type"`
	State      string    `json:"state"`
	Since      time.Time `json:"since"`
	Received   int       `json:"received"`
	Advertised int       `json:"advertised"`
}

// Error is the body of a non-200 answer.
type Error struct {
	// Code is a CNI error code where one fits (e.g. 11 "try again
	// later"); 0 otherwise.
	Code    uint   `json:"code,omitempty"`
	Message string `json:"error"`
}
