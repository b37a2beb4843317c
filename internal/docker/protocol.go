package docker

import "net/netip"

// Plugin names: the sockets are <dir>/calyx.sock and <dir>/calyx-ipam.sock,
// and these are the names given to docker network create -d and
// --ipam-driver.
const (
	NetworkDriverName = "calyx"
	IPAMDriverName    = "calyx-ipam"
)

// Options and data keys Docker and Calyx use.
const (
	// OptionNetworkName (docker network create -o calyx.network=NAME)
	// names the Calyx network when it should differ from Docker's name.
	OptionNetworkName = "calyx.network"
	// LabelPrefix marks container labels that become endpoint labels:
	// --label calyx.label/role=db gives the endpoint role=db.
	LabelPrefix = "calyx.label/"

	optionGeneric     = "com.docker.network.generic"
	optionEnableIPv6  = "com.docker.network.enable_ipv6"
	dataGateway       = "com.docker.network.gateway"
	requestAddrType   = "RequestAddressType"
	pluginContentType = "application/vnd.docker.plugins.v1.1+json"
)

// Address spaces and the pool IDs of networks created without --subnet,
// which draw from every pool of their family that fits the node.
const (
	localAddressSpace  = "CalyxLocal"
	globalAddressSpace = "CalyxGlobal"
	anyPoolV4          = "calyx-ipv4"
	anyPoolV6          = "calyx-ipv6"
)

// The wire types of the plugin protocol (libnetwork docs/remote.md and
// docs/ipam.md). Field names are Docker's.

type activateResponse struct {
	Implements []string
}

type errorResponse struct {
	Err string
}

type capabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct {
	NetworkID string
}

type endpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type createEndpointResponse struct {
	Interface *endpointInterface
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

// Route types of staticRoute.
const (
	routeNextHop   = 0
	routeConnected = 1
)

type joinResponse struct {
	InterfaceName         interfaceName
	Gateway               string `json:",omitempty"`
	GatewayIPv6           string `json:",omitempty"`
	StaticRoutes          []staticRoute
	DisableGatewayService bool
}

type operInfoResponse struct {
	Value map[string]any
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type releasePoolRequest struct {
	PoolID string
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}

// Calyx-side types: what the driver asks of the Backend.

// Pool is a Calyx IP pool a network may draw from.
type Pool struct {
	Name string
	CIDR netip.Prefix
}

// AddressRequest asks for one address: from the named pool (empty: any
// pool of the family that fits the node), of the family V6 says, or the
// address Addr (docker run --ip) when it is valid.
type AddressRequest struct {
	Pool string
	V6   bool
	Addr netip.Addr
}

// Endpoint is a Docker endpoint as CreateEndpoint describes it.
type Endpoint struct {
	// ID is Docker's endpoint ID, the key of everything Calyx keeps for it.
	ID string
	// NetworkID is Docker's (per-host) network ID; Network the Calyx
	// network's name.
	NetworkID, Network string
	// Addrs are the addresses the IPAM driver handed out for it.
	Addrs []netip.Addr
	// MAC is the container interface's MAC.
	MAC string
}

// Container is the container an endpoint joins, as dockerd lists it.
type Container struct {
	ID, Name string
	// Labels are its calyx.label/ labels, without the prefix.
	Labels map[string]string
}

// Join asks for an endpoint's host side: its veth, routes and policy.
type Join struct {
	EndpointID string
	Network    string
	// SandboxKey is the path of the container's network namespace.
	SandboxKey string
	Container  Container
}

// Joined says how libnetwork should build the container side.
type Joined struct {
	// TempIfName is the container end of the veth, in the host's
	// namespace, which libnetwork moves into the sandbox.
	TempIfName string
	// Gateway4 and Gateway6 are the container's next hops (invalid: none).
	Gateway4, Gateway6 netip.Addr
}
