package agent

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// add serves a CNI ADD: it allocates the attachment's addresses, makes
// sure its network's profile exists and writes its WorkloadEndpoint. The
// plugin then creates the veth and calls READY. Whatever add allocated or
// wrote is undone when a later step fails.
//
// A second ADD for an attachment whose endpoint and veth exist is refused
// (the CNI spec: the interface already exists). When the endpoint exists
// but its veth does not (an ADD retried after a crash), the endpoint and
// its addresses are reused.
func (s *service) add(ctx context.Context, req localapi.AddRequest) (localapi.AddResponse, error) {
	if err := checkAttachment(req.Attachment); err != nil {
		return localapi.AddResponse{}, err
	}
	orch := req.Orchestrator
	if orch == "" {
		orch = api.OrchestratorCNI
	}
	if orch != api.OrchestratorCNI && orch != api.OrchestratorMesos {
		return localapi.AddResponse{}, badRequestf("orchestrator %q: expected %q or %q", orch, api.OrchestratorMesos, api.OrchestratorCNI)
	}
	if err := checkPortMappings(req.PortMappings); err != nil {
		return localapi.AddResponse{}, err
	}
	handle := req.Handle()
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return localapi.AddResponse{}, err
	}
	defer unlock()
	if s.adds.busy(handle, s.now()) {
		return localapi.AddResponse{}, busyError(req.ContainerID, req.IfName)
	}
	if s.reaper != nil {
		// A DEL of this attachment just answered: its veth, whose names
		// the new one takes, goes first.
		if err := s.reaper.wait(ctx, vethName(handle)); err != nil {
			return localapi.AddResponse{}, err
		}
	}
	// Hold the host ports until the endpoint is written, so that two
	// concurrent ADDs cannot both map one.
	for _, k := range hostPortLockKeys(mappingPorts(req.PortMappings)) {
		unlockPort, err := s.locks.lock(ctx, k)
		if err != nil {
			return localapi.AddResponse{}, err
		}
		defer unlockPort()
	}
	resp, err := s.addLocked(ctx, req, orch)
	if err == nil {
		// The loop programs a new endpoint as soon as it sees the write;
		// READY waits for that pass (wrote) before it asks for another.
		var wrote uint64
		if !resp.Existing {
			wrote = s.view.current()
		}
		s.adds.added(handle, peerPID(ctx), s.now(), wrote)
	}
	return resp, err
}

// addLocked is add under the handle's lock.
func (s *service) addLocked(ctx context.Context, req localapi.AddRequest, orch string) (localapi.AddResponse, error) {
	handle := req.Handle()
	cur, other, err := s.findEndpoint(ctx, req.Attachment, false)
	if err != nil {
		return localapi.AddResponse{}, err
	}
	if other != nil {
		return localapi.AddResponse{}, attachmentExistsf("container %s already has interface %s on another network (endpoint %s, handle %s): DEL that attachment first",
			req.ContainerID, req.IfName, other.Metadata.Name, other.Metadata.Annotations[AnnotationHandle])
	}
	if cur != nil {
		return s.readd(ctx, req, cur)
	}
	self := endpointName(s.node, orch, req.ContainerID, req.IfName)
	if err := hostPortConflict(s.node, self, mappingPorts(req.PortMappings), s.view.endpoints()); err != nil {
		return localapi.AddResponse{}, err
	}

	if err := s.ensureProfile(ctx, req.Network); err != nil {
		return localapi.AddResponse{}, err
	}
	// The endpoint is written with the addresses, in IPAM's transaction,
	// when IPAM writes one (see ipam.AutoAssignArgs.Also).
	var prepared *datastore.PreparedCreate
	also := func(res ipam.AssignResult) ([]datastore.RawPut, []datastore.Cond, error) {
		w := buildEndpoint(s.node, cniEndpoint(s.node, req, orch, slices.Concat(res.IPv4, res.IPv6)))
		if err := w.Validate(); err != nil {
			return nil, nil, badRequestf("building the endpoint of %s: %w", handle, err)
		}
		pc, err := s.store.PrepareCreate(w)
		if err != nil {
			return nil, nil, err
		}
		prepared = &pc
		return []datastore.RawPut{pc.Put}, []datastore.Cond{pc.Cond}, nil
	}
	addrs, rev, err := s.allocate(ctx, req.Attachment, orch, req.IPAM, nil, also)
	if ipam.IsAlsoConflict(err) {
		// The endpoint exists, which the view had not seen yet: nothing
		// was allocated.
		return s.addExisting(ctx, req, err, func(e error) error { return e })
	}
	if err != nil {
		return localapi.AddResponse{}, err
	}
	undo := func(why error) error {
		if isOutage(why) {
			s.leaveToGC(handle, why)
			return why
		}
		uctx, cancel := undoContext(ctx)
		defer cancel()
		if err := s.alloc.ReleaseByHandle(uctx, handle); err != nil {
			s.log.Warn("releasing the addresses of a failed ADD", "handle", handle, "err", err)
		}
		return why
	}
	var wep *api.WorkloadEndpoint
	if rev != 0 && prepared != nil {
		wep = prepared.Written(rev).(*api.WorkloadEndpoint)
		s.view.wroteEndpoint(wep)
	} else {
		// Addresses asked for by CNI_ARGS, or held already by the handle
		// (an ADD retried after a failure that left them): IPAM wrote
		// nothing, so the endpoint is written on its own.
		wep, err = s.createEndpoint(ctx, cniEndpoint(s.node, req, orch, addrs))
		if datastore.IsAlreadyExists(err) {
			return s.addExisting(ctx, req, err, undo)
		}
		if err != nil {
			return localapi.AddResponse{}, undo(err)
		}
	}
	s.log.Debug("endpoint created", "endpoint", wep.Metadata.Name, "handle", handle, "ips", wep.Spec.IPNetworks)
	return s.addResponse(wep, handle, req.MTU), nil
}

// addExisting answers an ADD whose endpoint turned out to exist when it
// was written (why), which the view had not seen yet: it looks again in
// the datastore. undo takes back what the ADD allocated, if anything.
func (s *service) addExisting(ctx context.Context, req localapi.AddRequest, why error, undo func(error) error) (localapi.AddResponse, error) {
	cur, other, err := s.findEndpoint(ctx, req.Attachment, true)
	switch {
	case err != nil:
		return localapi.AddResponse{}, undo(err)
	case cur != nil:
		return s.readd(ctx, req, cur)
	case other != nil:
		return localapi.AddResponse{}, undo(attachmentExistsf("container %s already has interface %s on another network (endpoint %s): DEL that attachment first",
			req.ContainerID, req.IfName, other.Metadata.Name))
	}
	return localapi.AddResponse{}, undo(fmt.Errorf("writing the endpoint of %s: %w", req.Handle(), why))
}

// readd answers an ADD for an attachment that already has an endpoint.
// A plugin that creates the veth itself (PluginCreatesVeth) tells the two
// cases apart by its create failing or not, so the endpoint is answered
// (Existing) without looking for the host end.
func (s *service) readd(ctx context.Context, req localapi.AddRequest, cur *api.WorkloadEndpoint) (localapi.AddResponse, error) {
	veth := cur.Spec.InterfaceName
	exists := false
	if !req.PluginCreatesVeth {
		var err error
		if exists, err = s.host.HasLink(ctx, veth); err != nil {
			return localapi.AddResponse{}, err
		}
	}
	if exists {
		return localapi.AddResponse{}, attachmentExistsf("container %s already has interface %s on network %s (endpoint %s, host interface %s): the CNI spec allows one ADD per container and interface; DEL it first",
			req.ContainerID, req.IfName, req.Network, cur.Metadata.Name, veth)
	}
	// A retried ADD: the endpoint outlived its veth. Keep its addresses,
	// making sure its handle still holds them.
	addrs := endpointAddrs(cur)
	held, err := s.alloc.IPsByHandle(ctx, req.Handle())
	if err != nil && !ipam.IsNotFound(err) {
		return localapi.AddResponse{}, err
	}
	for _, a := range addrs {
		if slices.Contains(held, a) {
			continue
		}
		if err := s.alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: a, Handle: req.Handle(), Attrs: s.attrs(req.Attachment, cur.Spec.Orchestrator, false), Node: s.node}); err != nil {
			return localapi.AddResponse{}, fmt.Errorf("re-assigning %s to the endpoint %s of a retried ADD: %w", a, cur.Metadata.Name, err)
		}
	}
	s.log.Info("ADD for an endpoint that exists: reusing it", "endpoint", cur.Metadata.Name, "ips", cur.Spec.IPNetworks)
	resp := s.addResponse(cur, req.Handle(), req.MTU)
	resp.Existing = true
	return resp, nil
}

// attrs are the IPAM attributes of an attachment's allocation.
func (s *service) attrs(a localapi.Attachment, orch string, ipamOnly bool) map[string]string {
	m := map[string]string{
		"node": s.node, "orchestrator": orch, "network": a.Network,
		"containerID": a.ContainerID, "ifname": a.IfName,
	}
	if ipamOnly {
		// calyx-ipam under another plugin: no endpoint will ever hold
		// these addresses, so the endpoint-less handle collector must
		// leave them alone.
		m[ipam.AttrIPAMOnly] = "true"
	}
	return m
}

// allocate assigns an attachment's addresses: the requested ones, or one
// IPv4 and/or one IPv6 address from the pools. extra attributes are added
// to the allocation. All or nothing: a failure releases what it took.
//
// also, when set, is passed to IPAM as AutoAssignArgs.Also (pool
// allocations only; CNI_ARGS IP= addresses are assigned without it); rev
// is the revision IPAM wrote at, 0 when it wrote nothing with also.
func (s *service) allocate(ctx context.Context, a localapi.Attachment, orch string, req localapi.IPAMRequest, extra map[string]string,
	also func(ipam.AssignResult) ([]datastore.RawPut, []datastore.Cond, error),
) (addrs []netip.Addr, rev int64, err error) {
	handle := a.Handle()
	attrs := s.attrs(a, orch, false)
	maps.Copy(attrs, extra)
	if len(req.RequestedIPs) > 0 {
		var ips []netip.Addr
		n4 := 0
		for _, r := range req.RequestedIPs {
			ip, err := netip.ParseAddr(r)
			if err != nil {
				if p, perr := netip.ParsePrefix(r); perr == nil {
					ip, err = p.Addr(), nil
				}
			}
			if err != nil {
				return nil, 0, badRequestf("requested IP %q is not an address", r)
			}
			if ip.Unmap().Is4() {
				n4++
			}
			ips = append(ips, ip)
		}
		if n4 > 1 || len(ips)-n4 > 1 {
			return nil, 0, &apiError{status: http.StatusBadRequest, err: &tooManyAddressesError{n4: n4, n6: len(ips) - n4}}
		}
		var out []netip.Addr
		for _, ip := range ips {
			if err := s.alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: ip, Handle: handle, Attrs: attrs, Node: s.node}); err != nil {
				if isOutage(err) {
					s.leaveToGC(handle, err)
					return nil, 0, err
				}
				uctx, cancel := undoContext(ctx)
				if rerr := s.alloc.ReleaseByHandle(uctx, handle); rerr != nil {
					s.log.Warn("releasing the addresses of a failed ADD", "handle", handle, "err", rerr)
				}
				cancel()
				return nil, 0, s.ipamError(err)
			}
			out = append(out, ip.Unmap())
		}
		s.countAllocations(out)
		return out, 0, nil
	}
	n4, n6 := 0, 0
	if req.AssignIPv4 || !req.AssignIPv6 {
		n4 = 1
	}
	if req.AssignIPv6 {
		n6 = 1
	}
	res, err := s.alloc.AutoAssign(ctx, ipam.AutoAssignArgs{
		Num4: n4, Num6: n6, Handle: handle, Attrs: attrs, Node: s.node,
		IPv4Pools: req.IPv4Pools, IPv6Pools: req.IPv6Pools, Also: also,
	})
	if ipam.IsAlsoConflict(err) {
		return nil, 0, err
	}
	if err != nil {
		return nil, 0, s.ipamError(err)
	}
	out := slices.Concat(res.IPv4, res.IPv6)
	s.countAllocations(out)
	if also == nil {
		return out, 0, nil
	}
	return out, res.Revision, nil
}

func (s *service) countAllocations(addrs []netip.Addr) {
	for _, a := range addrs {
		fam := "ipv4"
		if a.Is6() {
			fam = "ipv6"
		}
		s.m.allocations.WithLabelValues(fam).Inc()
	}
}

// ipamError adds what the operator can do to an allocation failure.
func (s *service) ipamError(err error) error {
	switch {
	case ipam.IsExhausted(err) && s.view.poolCount() == 0:
		return fmt.Errorf("no IP pool matches node %s: create one with `calyxctl apply -f pool.yaml` (see examples/10-ippools.yaml): %w", s.node, err)
	case ipam.IsExhausted(err):
		return fmt.Errorf("%w (`calyxctl get ippools` lists the pools, `calyxctl ipam show` their usage)", err)
	case ipam.IsPoolNotFound(err), ipam.IsPoolDisabled(err), ipam.IsInvalid(err), ipam.IsNotInPool(err):
		return &apiError{status: http.StatusBadRequest, err: err}
	case ipam.IsInUse(err):
		return &apiError{status: http.StatusConflict, err: err}
	}
	return err
}

// ensureProfile creates the network's profile on first use: members of
// the network may talk to each other, and egress is allowed. An existing
// profile, maybe written by an operator, is never changed.
func (s *service) ensureProfile(ctx context.Context, network string) error {
	name := profileName(network)
	if s.view.hasProfile(name) {
		return nil
	}
	p := profileKind().New().(*api.Profile)
	p.Metadata.Name = name
	p.Spec.Ingress = []api.Rule{{Action: api.ActionAllow, Source: api.EntityRule{Selector: networkSelector(network)}}}
	p.Spec.Egress = []api.Rule{{Action: api.ActionAllow}}
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("building the profile of network %q: %w", network, err)
	}
	out, err := s.store.Create(ctx, p)
	switch {
	case datastore.IsAlreadyExists(err):
		return nil // the syncer delivers it
	case err != nil:
		return fmt.Errorf("creating the profile of network %q: %w", network, err)
	}
	s.log.Info("created the profile of a new network", "network", network, "profile", name)
	s.view.notedProfile(out.(*api.Profile))
	return nil
}

// endpointSpec is an attachment as the endpoint lifecycle sees it,
// whichever runtime asked for it: the CNI plugin (ADD) or Docker
// (CreateEndpoint). Everything an endpoint records comes from it.
type endpointSpec struct {
	name, handle, orchestrator, network string
	// workload, containerID and endpoint fill the endpoint's spec fields
	// of the same names.
	workload, containerID, endpoint string
	labels                          map[string]string // the runtime's labels
	annotations                     map[string]string // beyond the handle
	addrs                           []netip.Addr
	ports                           []api.EndpointPort
	// mac is the container end's MAC.
	mac string
}

// cniEndpoint is the endpoint spec of a CNI ADD.
func cniEndpoint(node string, req localapi.AddRequest, orch string, addrs []netip.Addr) endpointSpec {
	handle := req.Handle()
	e := endpointSpec{
		name: endpointName(node, orch, req.ContainerID, req.IfName), handle: handle, orchestrator: orch, network: req.Network,
		workload: req.ContainerID, containerID: req.ContainerID, endpoint: req.IfName,
		labels: req.Labels, addrs: addrs, ports: mappingPorts(req.PortMappings), mac: containerMAC(handle).String(),
	}
	if req.Netns != "" {
		e.annotations = map[string]string{AnnotationNetns: req.Netns}
	}
	return e
}

// createEndpoint writes a new attachment's WorkloadEndpoint, creating its
// network's profile on first use. An endpoint that exists already
// satisfies datastore.IsAlreadyExists.
func (s *service) createEndpoint(ctx context.Context, e endpointSpec) (*api.WorkloadEndpoint, error) {
	if err := s.ensureProfile(ctx, e.network); err != nil {
		return nil, err
	}
	w := buildEndpoint(s.node, e)
	if err := w.Validate(); err != nil {
		return nil, badRequestf("building the endpoint of %s: %w", e.handle, err)
	}
	created, err := s.store.Create(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("writing endpoint %s: %w", w.Metadata.Name, err)
	}
	wep := created.(*api.WorkloadEndpoint)
	s.view.wroteEndpoint(wep)
	return wep, nil
}

// buildEndpoint returns the WorkloadEndpoint of a new attachment. Pure.
func buildEndpoint(node string, e endpointSpec) *api.WorkloadEndpoint {
	w := wepKind().New().(*api.WorkloadEndpoint)
	w.Metadata.Name = e.name
	w.Metadata.Labels = endpointLabels(e.labels, e.network, e.orchestrator)
	w.Metadata.Annotations = maps.Clone(e.annotations)
	if w.Metadata.Annotations == nil {
		w.Metadata.Annotations = map[string]string{}
	}
	w.Metadata.Annotations[AnnotationHandle] = e.handle
	w.Spec = api.WorkloadEndpointSpec{
		Orchestrator: e.orchestrator, Workload: e.workload, Node: node, ContainerID: e.containerID,
		Endpoint: e.endpoint, InterfaceName: vethName(e.handle), IPNetworks: hostPrefixes(e.addrs),
		MAC: e.mac, Profiles: []string{profileName(e.network)}, Ports: e.ports,
	}
	w.SetDefaults()
	return w
}

// endpointLabels are an endpoint's labels: the runtime's, and the
// network and orchestrator labels Calyx sets, which win.
func endpointLabels(labels map[string]string, network, orch string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelNetwork] = networkLabelValue(network)
	out[LabelOrchestrator] = orch
	return out
}

// portMappingProtocols are the protocols of a port mapping, as the ADD
// request spells them.
var portMappingProtocols = []string{"tcp", "udp", "sctp"}

// checkPortMappings refuses an ADD whose port mappings calyx-node cannot
// program: a port outside 1-65535, a protocol other than tcp, udp or sctp
// (any case; empty means tcp), or a host port mapped twice for one
// protocol. The plugin checks the same, so this guards other clients.
func checkPortMappings(pms []localapi.PortMapping) error {
	first := map[string]int{}
	for i, m := range pms {
		key := fmt.Sprintf("portMappings[%d]", i)
		if m.HostPort == 0 {
			return badRequestf("%s.hostPort: expected a port number 1-65535, got 0", key)
		}
		if m.ContainerPort == 0 {
			return badRequestf("%s.containerPort: expected a port number 1-65535, got 0", key)
		}
		proto := strings.ToLower(m.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if !slices.Contains(portMappingProtocols, proto) {
			return badRequestf("%s.protocol: expected \"tcp\", \"udp\" or \"sctp\", got %q", key, m.Protocol)
		}
		hk := fmt.Sprintf("%d/%s", m.HostPort, proto)
		if j, dup := first[hk]; dup {
			return badRequestf("%s.hostPort: host port %s is already mapped by portMappings[%d]", key, hk, j)
		}
		first[hk] = i
	}
	return nil
}

// mappingPorts turns an ADD's port mappings into the endpoint's
// spec.ports entries: no name, the container port as port and the host
// port as hostPort, which the dataplane turns into DNAT from the host's
// addresses.
func mappingPorts(pms []localapi.PortMapping) []api.EndpointPort {
	if len(pms) == 0 {
		return nil
	}
	out := make([]api.EndpointPort, 0, len(pms))
	for _, m := range pms {
		proto := strings.ToUpper(m.Protocol)
		if proto == "" {
			proto = api.ProtocolTCP
		}
		out = append(out, api.EndpointPort{Protocol: api.Protocol{Name: proto}, Port: m.ContainerPort, HostPort: m.HostPort})
	}
	return out
}

// hostPortConflict refuses ports whose host port and protocol another
// endpoint on node (any but self) already maps: the dataplane could send
// that traffic to only one of them.
func hostPortConflict(node, self string, ports []api.EndpointPort, eps []*api.WorkloadEndpoint) error {
	want := map[string]bool{}
	for _, p := range ports {
		if p.HostPort != 0 {
			want[hostPortKey(p)] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	for _, w := range eps {
		if w.Metadata.Name == self || w.Spec.Node != node {
			continue
		}
		for _, p := range w.Spec.Ports {
			if p.HostPort != 0 && want[hostPortKey(p)] {
				return badRequestf("host port %s is already mapped on node %s by endpoint %s (container %s): each host port and protocol can go to one container only; choose another host port or DEL that container first",
					hostPortKey(p), node, w.Metadata.Name, w.Spec.ContainerID)
			}
		}
	}
	return nil
}

// hostPortKey is "31001/TCP": a port mapping's host port and protocol.
func hostPortKey(p api.EndpointPort) string {
	return fmt.Sprintf("%d/%s", p.HostPort, strings.ToUpper(p.Protocol.String()))
}

// hostPortLockKeys are the lock keys of the ports' host ports, sorted so
// that ADDs take them in one order. They share the handle locks; the
// "host port " prefix keeps them apart from IPAM handles
// (network.container.ifname).
func hostPortLockKeys(ports []api.EndpointPort) []string {
	var keys []string
	for _, p := range ports {
		if p.HostPort != 0 {
			keys = append(keys, "host port "+hostPortKey(p))
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// addResponse tells the plugin how to build the container side. The
// container MAC is the one the endpoint records, so that READY finds
// nothing to write; an endpoint that records none (written by an older
// calyx-node) gets the derived one, which READY then records.
func (s *service) addResponse(w *api.WorkloadEndpoint, handle string, mtu int) localapi.AddResponse {
	if mtu <= 0 {
		mtu = s.mtu
	}
	if mtu <= 0 {
		mtu = s.derivedMTU()
	}
	mac := w.Spec.MAC
	if mac == "" {
		mac = containerMAC(handle).String()
	}
	resp := localapi.AddResponse{
		Endpoint: w.Metadata.Name, HostIfName: w.Spec.InterfaceName,
		IPs: slices.Clone(w.Spec.IPNetworks), MTU: mtu, ContainerMAC: mac,
	}
	for _, a := range endpointAddrs(w) {
		if a.Is4() {
			resp.Gateway4 = gateway4
		} else {
			resp.Gateway6 = gateway6
		}
	}
	return resp
}
