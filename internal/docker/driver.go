package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Backend is calyx-node's endpoint lifecycle as the driver drives it, in
// libnetwork's order: Allocate (RequestAddress), CreateEndpoint, Join,
// Leave, DeleteEndpoint, Release (ReleaseAddress). Every method waits
// for calyx-node to have read the datastore, and deleting what is gone
// is not an error.
type Backend interface {
	// Pools lists the enabled IP pools, for --subnet.
	Pools(ctx context.Context) ([]Pool, error)
	Allocate(ctx context.Context, req AddressRequest) (netip.Addr, error)
	Release(ctx context.Context, addr netip.Addr) error
	// CreateEndpoint records the endpoint and returns the container MAC
	// it recorded (ep.MAC when set).
	CreateEndpoint(ctx context.Context, ep Endpoint) (mac string, err error)
	// Join creates the veth, records the container and its labels on the
	// endpoint and returns once the host side, policy included, is
	// programmed.
	Join(ctx context.Context, j Join) (Joined, error)
	Leave(ctx context.Context, endpointID string) error
	DeleteEndpoint(ctx context.Context, endpointID string) error
}

// Engine is dockerd's API as the driver reads it.
type Engine interface {
	// NetworkName returns the Calyx name of the network with this ID:
	// its calyx.network option, else its Docker name.
	NetworkName(ctx context.Context, networkID string) (string, error)
	// EndpointContainer returns the container an endpoint of the network
	// belongs to, with all its labels.
	EndpointContainer(ctx context.Context, networkID, endpointID string) (Container, error)
}

// Driver serves the network and IPAM plugin APIs.
type Driver struct {
	b       Backend
	e       Engine
	log     *slog.Logger
	observe Observer

	mu    sync.Mutex        // guards names
	names map[string]string // Docker network ID -> Calyx network name
}

// Observer is told how long each request took and whether it failed.
type Observer func(method string, took time.Duration, err error)

// NewDriver returns a driver over calyx-node's backend and dockerd's API;
// observe (nil: none) sees every request.
func NewDriver(b Backend, e Engine, log *slog.Logger, observe Observer) *Driver {
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	return &Driver{b: b, e: e, log: log, observe: observe, names: map[string]string{}}
}

// NetworkHandler serves the network driver socket (calyx.sock).
func (d *Driver) NetworkHandler() http.Handler {
	mux := http.NewServeMux()
	handle(mux, d, "Plugin.Activate", func(context.Context, struct{}) (any, error) {
		return activateResponse{Implements: []string{"NetworkDriver"}}, nil
	})
	handle(mux, d, "NetworkDriver.GetCapabilities", func(context.Context, struct{}) (any, error) {
		return capabilitiesResponse{Scope: "local", ConnectivityScope: "global"}, nil
	})
	handle(mux, d, "NetworkDriver.CreateNetwork", d.createNetwork)
	handle(mux, d, "NetworkDriver.DeleteNetwork", func(_ context.Context, r networkRequest) (any, error) {
		d.mu.Lock()
		delete(d.names, r.NetworkID)
		d.mu.Unlock()
		return struct{}{}, nil
	})
	handle(mux, d, "NetworkDriver.AllocateNetwork", func(context.Context, struct{}) (any, error) {
		return nil, errors.New("the calyx driver is a local-scope driver and does not take part in swarm network allocation")
	})
	handle(mux, d, "NetworkDriver.FreeNetwork", func(context.Context, struct{}) (any, error) {
		return struct{}{}, nil
	})
	handle(mux, d, "NetworkDriver.CreateEndpoint", d.createEndpoint)
	handle(mux, d, "NetworkDriver.EndpointOperInfo", func(context.Context, endpointRequest) (any, error) {
		return operInfoResponse{Value: map[string]any{}}, nil
	})
	handle(mux, d, "NetworkDriver.DeleteEndpoint", func(ctx context.Context, r endpointRequest) (any, error) {
		return struct{}{}, d.b.DeleteEndpoint(ctx, r.EndpointID)
	})
	handle(mux, d, "NetworkDriver.Join", d.join)
	handle(mux, d, "NetworkDriver.Leave", func(ctx context.Context, r endpointRequest) (any, error) {
		return struct{}{}, d.b.Leave(ctx, r.EndpointID)
	})
	handle(mux, d, "NetworkDriver.ProgramExternalConnectivity", func(context.Context, endpointRequest) (any, error) {
		return struct{}{}, nil // routed: nothing to do for the outside to reach the container
	})
	handle(mux, d, "NetworkDriver.RevokeExternalConnectivity", func(context.Context, endpointRequest) (any, error) {
		return struct{}{}, nil
	})
	handle(mux, d, "NetworkDriver.DiscoverNew", func(context.Context, struct{}) (any, error) { return struct{}{}, nil })
	handle(mux, d, "NetworkDriver.DiscoverDelete", func(context.Context, struct{}) (any, error) { return struct{}{}, nil })
	return mux
}

// IPAMHandler serves the IPAM driver socket (calyx-ipam.sock).
func (d *Driver) IPAMHandler() http.Handler {
	mux := http.NewServeMux()
	handle(mux, d, "Plugin.Activate", func(context.Context, struct{}) (any, error) {
		return activateResponse{Implements: []string{"IpamDriver"}}, nil
	})
	handle(mux, d, "IpamDriver.GetCapabilities", func(context.Context, struct{}) (any, error) {
		return ipamCapabilitiesResponse{}, nil
	})
	handle(mux, d, "IpamDriver.GetDefaultAddressSpaces", func(context.Context, struct{}) (any, error) {
		return addressSpacesResponse{LocalDefaultAddressSpace: localAddressSpace, GlobalDefaultAddressSpace: globalAddressSpace}, nil
	})
	handle(mux, d, "IpamDriver.RequestPool", d.requestPool)
	handle(mux, d, "IpamDriver.ReleasePool", func(context.Context, releasePoolRequest) (any, error) {
		return struct{}{}, nil // pools belong to Calyx, not to a Docker network
	})
	handle(mux, d, "IpamDriver.RequestAddress", d.requestAddress)
	handle(mux, d, "IpamDriver.ReleaseAddress", d.releaseAddress)
	return mux
}

// maxRequestBytes bounds a plugin request body.
const maxRequestBytes = 1 << 20

// handle routes POST /<method> to fn, decoding its JSON body (an empty
// body is an empty request) and answering 200 with fn's result or 500
// with {"Err": message}, which dockerd shows the user.
func handle[Req any](mux *http.ServeMux, d *Driver, method string, fn func(context.Context, Req) (any, error)) {
	log := d.log
	mux.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var req Req
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
		if err == nil && len(strings.TrimSpace(string(body))) > 0 {
			err = json.Unmarshal(body, &req)
		}
		var resp any
		if err != nil {
			err = fmt.Errorf("decoding the %s request: %w", method, err)
		} else {
			resp, err = fn(r.Context(), req)
		}
		d.observe(method, time.Since(start), err)
		w.Header().Set("Content-Type", pluginContentType)
		if err != nil {
			log.Warn("docker plugin request failed", "method", method, "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(errorResponse{Err: err.Error()})
			return
		}
		log.Debug("docker plugin request", "method", method)
		_ = json.NewEncoder(w).Encode(resp)
	})
}

// createNetwork checks that the network uses calyx-ipam and takes only
// options Calyx knows, and remembers the name calyx.network gives.
func (d *Driver) createNetwork(_ context.Context, r createNetworkRequest) (any, error) {
	for _, data := range append(slices.Clone(r.IPv4Data), r.IPv6Data...) {
		if data.AddressSpace != localAddressSpace && data.AddressSpace != globalAddressSpace {
			return nil, fmt.Errorf("network driver %s needs the IPAM driver %s (docker network create -d %s --ipam-driver %s NAME): address space %q is another IPAM driver's",
				NetworkDriverName, IPAMDriverName, NetworkDriverName, IPAMDriverName, data.AddressSpace)
		}
	}
	if len(r.IPv4Data) == 0 && len(r.IPv6Data) == 0 {
		return nil, fmt.Errorf("network driver %s needs the IPAM driver %s: the network has no address pool", NetworkDriverName, IPAMDriverName)
	}
	generic, _ := r.Options[optionGeneric].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(generic)) {
		if k != OptionNetworkName {
			return nil, fmt.Errorf("option -o %s: the %s driver takes only -o %s=NAME", k, NetworkDriverName, OptionNetworkName)
		}
	}
	if v, ok := generic[OptionNetworkName]; ok {
		name, _ := v.(string)
		if name == "" {
			return nil, fmt.Errorf("option -o %s: expected a network name", OptionNetworkName)
		}
		d.mu.Lock()
		d.names[r.NetworkID] = name
		d.mu.Unlock()
	}
	return struct{}{}, nil
}

// networkName is the Calyx name of a Docker network: the calyx.network
// option given at creation, or the network's Docker name. Both are kept
// by dockerd, which is asked once per network and calyx-node run.
func (d *Driver) networkName(ctx context.Context, networkID string) (string, error) {
	d.mu.Lock()
	name, ok := d.names[networkID]
	d.mu.Unlock()
	if ok {
		return name, nil
	}
	name, err := d.e.NetworkName(ctx, networkID)
	if err != nil {
		return "", fmt.Errorf("reading the name of network %s from dockerd: %w", shortID(networkID), err)
	}
	d.mu.Lock()
	d.names[networkID] = name
	d.mu.Unlock()
	return name, nil
}

func (d *Driver) createEndpoint(ctx context.Context, r createEndpointRequest) (any, error) {
	if r.EndpointID == "" {
		return nil, errors.New("CreateEndpoint: no EndpointID")
	}
	ep := Endpoint{ID: r.EndpointID, NetworkID: r.NetworkID}
	if r.Interface != nil {
		for _, s := range []string{r.Interface.Address, r.Interface.AddressIPv6} {
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("CreateEndpoint: interface address %q: %w", s, err)
			}
			ep.Addrs = append(ep.Addrs, p.Addr())
		}
		ep.MAC = r.Interface.MacAddress
	}
	if len(ep.Addrs) == 0 {
		return nil, fmt.Errorf("endpoint %s has no address: the network must use the IPAM driver %s", shortID(r.EndpointID), IPAMDriverName)
	}
	name, err := d.networkName(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	ep.Network = name
	mac, err := d.b.CreateEndpoint(ctx, ep)
	if err != nil {
		return nil, err
	}
	if ep.MAC != "" {
		// libnetwork refuses a driver that changes what it was given.
		return createEndpointResponse{}, nil
	}
	return createEndpointResponse{Interface: &endpointInterface{MacAddress: mac}}, nil
}

func (d *Driver) join(ctx context.Context, r joinRequest) (any, error) {
	name, err := d.networkName(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	c, err := d.e.EndpointContainer(ctx, r.NetworkID, r.EndpointID)
	if err != nil {
		return nil, fmt.Errorf("finding the container of endpoint %s in dockerd, for its %s labels: %w", shortID(r.EndpointID), LabelPrefix, err)
	}
	c.Labels = calyxLabels(c.Labels)
	j, err := d.b.Join(ctx, Join{EndpointID: r.EndpointID, Network: name, SandboxKey: r.SandboxKey, Container: c})
	if err != nil {
		return nil, err
	}
	resp := joinResponse{InterfaceName: interfaceName{SrcName: j.TempIfName, DstPrefix: "eth"}}
	if j.Gateway4.IsValid() {
		resp.Gateway = j.Gateway4.String()
		resp.StaticRoutes = append(resp.StaticRoutes, staticRoute{Destination: netip.PrefixFrom(j.Gateway4, 32).String(), RouteType: routeConnected})
	}
	if j.Gateway6.IsValid() {
		resp.GatewayIPv6 = j.Gateway6.String()
	}
	return resp, nil
}

// calyxLabels keeps the labels under LabelPrefix, without it.
func calyxLabels(all map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range all {
		if key, ok := strings.CutPrefix(k, LabelPrefix); ok && key != "" {
			out[key] = v
		}
	}
	return out
}

// Gateways handed to Docker at RequestPool, so that libnetwork asks
// calyx-ipam for no gateway address: containers route via these
// link-local addresses, answered by the host end of their veth.
var (
	poolGateway4 = netip.MustParsePrefix("169.254.1.1/32")
	poolGateway6 = netip.MustParsePrefix("fe80::ecee:eeff:feee:eeee/128")
)

func (d *Driver) requestPool(ctx context.Context, r requestPoolRequest) (any, error) {
	if r.SubPool != "" {
		return nil, fmt.Errorf("--ip-range %s: Calyx allocates from whole IP pools; leave --ip-range out", r.SubPool)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Options)) {
		return nil, fmt.Errorf("--ipam-opt %s: the %s IPAM driver takes no options", k, IPAMDriverName)
	}
	gw := poolGateway4
	if r.V6 {
		gw = poolGateway6
	}
	data := map[string]string{dataGateway: gw.String()}
	if r.Pool == "" {
		id, all := anyPoolV4, "0.0.0.0/0"
		if r.V6 {
			id, all = anyPoolV6, "::/0"
		}
		return requestPoolResponse{PoolID: id, Pool: all, Data: data}, nil
	}
	want, err := netip.ParsePrefix(r.Pool)
	if err != nil {
		return nil, fmt.Errorf("--subnet %q: expected a CIDR such as 10.65.0.0/16", r.Pool)
	}
	pools, err := d.b.Pools(ctx)
	if err != nil {
		return nil, err
	}
	var have []string
	for _, p := range pools {
		if p.CIDR == want.Masked() && p.CIDR.Addr().Is6() == r.V6 {
			return requestPoolResponse{PoolID: poolID(p.Name, r.V6), Pool: p.CIDR.String(), Data: data}, nil
		}
		have = append(have, p.Name+" "+p.CIDR.String())
	}
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	return nil, fmt.Errorf("--subnet %s: no Calyx IP pool has this CIDR (pools: %s); give a pool's CIDR, or create the pool first with calyxctl apply", r.Pool, list)
}

// Prefixes of the PoolIDs of networks created with --subnet, by family:
// RequestAddress names only the PoolID.
const (
	poolIDPrefix4 = "calyx-pool4:"
	poolIDPrefix6 = "calyx-pool6:"
)

// poolID is the PoolID of a Calyx pool.
func poolID(name string, v6 bool) string {
	if v6 {
		return poolIDPrefix6 + name
	}
	return poolIDPrefix4 + name
}

// addressRequest turns a PoolID and a wanted address into a Backend
// request.
func addressRequest(poolID, addr string) (AddressRequest, error) {
	var req AddressRequest
	switch {
	case poolID == anyPoolV4:
	case poolID == anyPoolV6:
		req.V6 = true
	case strings.HasPrefix(poolID, poolIDPrefix4):
		req.Pool = strings.TrimPrefix(poolID, poolIDPrefix4)
	case strings.HasPrefix(poolID, poolIDPrefix6):
		req.Pool, req.V6 = strings.TrimPrefix(poolID, poolIDPrefix6), true
	default:
		return req, fmt.Errorf("pool ID %q is not one of %s's (was the network created with another IPAM driver?)", poolID, IPAMDriverName)
	}
	if addr != "" {
		a, err := parseAddr(addr)
		if err != nil {
			return req, fmt.Errorf("--ip %q: expected an IP address", addr)
		}
		if req.Pool != "" && a.Is6() != req.V6 {
			return req, fmt.Errorf("--ip %s: not an address of the pool's family", addr)
		}
		req.Addr = a
		req.V6 = a.Is6()
	}
	return req, nil
}

func (d *Driver) requestAddress(ctx context.Context, r requestAddressRequest) (any, error) {
	if r.Options[requestAddrType] == dataGateway {
		return nil, errors.New("--gateway: Calyx networks have no gateway address in the pool (containers route via 169.254.1.1); leave --gateway out")
	}
	req, err := addressRequest(r.PoolID, r.Address)
	if err != nil {
		return nil, err
	}
	a, err := d.b.Allocate(ctx, req)
	if err != nil {
		return nil, err
	}
	return requestAddressResponse{Address: netip.PrefixFrom(a, a.BitLen()).String(), Data: map[string]string{}}, nil
}

func (d *Driver) releaseAddress(ctx context.Context, r releaseAddressRequest) (any, error) {
	a, err := parseAddr(r.Address)
	if err != nil {
		return nil, fmt.Errorf("ReleaseAddress: address %q: expected an IP address", r.Address)
	}
	if a == poolGateway4.Addr() || a == poolGateway6.Addr() || a.IsUnspecified() {
		return struct{}{}, nil // the gateway RequestPool named, never allocated
	}
	return struct{}{}, d.b.Release(ctx, a)
}

// parseAddr parses an address, with or without a prefix length.
func parseAddr(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// shortID is Docker's 12-character form of an ID, for messages.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
