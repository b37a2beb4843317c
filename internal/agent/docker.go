package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/docker"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// Docker endpoints. libnetwork drives the endpoint lifecycle the CNI
// plugin drives, in its own order and with its own keys:
//
//   - RequestAddress carries no endpoint or container, so each address is
//     held under a handle of its own, dockerAddrPrefix + random, with the
//     attributes node and orchestrator=libnetwork; ReleaseAddress finds
//     it by the address.
//   - The endpoint is keyed by Docker's endpoint ID: its IPAM handle
//     annotation, lock key and veth name derive from dockerHandle(ID),
//     and its name from the node and the ID.
//   - CreateEndpoint writes the WorkloadEndpoint (createEndpoint, as ADD
//     does); Join records the container and its calyx.label/ labels on
//     it, creates the veth and waits for the reconcile loop to program
//     it (as READY does); Leave removes the host side and DeleteEndpoint
//     the endpoint (releaseHost and deleteEndpoint, as DEL does).
const dockerAddrPrefix = "docker-ip."

// dockerHandle is the key of a Docker endpoint.
func dockerHandle(endpointID string) string { return "docker." + endpointID }

// dockerEndpointName is the WorkloadEndpoint name of a Docker endpoint:
// "<node>-libnetwork-<first 16 hex of the endpoint ID>", as endpointName
// joins segments.
func dockerEndpointName(node, endpointID string) string {
	id := endpointID
	if len(id) > 16 {
		id = id[:16]
	}
	return endpointName(node, api.OrchestratorDocker, id, "docker")
}

// dockerTempName is the container end of a Docker endpoint's veth while
// it is in the host's namespace: "tmp" and the hash the host end has.
func dockerTempName(handle string) string { return localapi.TempIfName(handle) }

// Labels and annotations of Docker endpoints.
const (
	// AnnotationDockerEndpoint records Docker's endpoint ID.
	AnnotationDockerEndpoint = "calyx.dev/docker-endpoint"
	// AnnotationDockerNetwork records Docker's (per-host) network ID.
	AnnotationDockerNetwork = "calyx.dev/docker-network"
)

// dockerBackend is calyx-node's side of the Docker plugins.
type dockerBackend struct {
	s      *service
	kernel dockerKernel
	log    *slog.Logger

	wg    sync.WaitGroup                // the sandbox waits
	mu    sync.Mutex                    // guards sides
	sides map[string]context.CancelFunc // endpoint ID -> stops its sandbox wait
}

var _ docker.Backend = (*dockerBackend)(nil)

func newDockerBackend(s *service, k dockerKernel, log *slog.Logger) *dockerBackend {
	return &dockerBackend{s: s, kernel: k, log: log, sides: map[string]context.CancelFunc{}}
}

// begin waits for calyx-node to have read the datastore and bounds the
// request's datastore work, as the local API does for CNI requests.
func (b *dockerBackend) begin(ctx context.Context, needStore bool) (context.Context, context.CancelFunc, error) {
	if err := b.waitReady(ctx); err != nil {
		return nil, nil, err
	}
	if needStore {
		if err := b.s.unavailable(); err != nil {
			return nil, nil, err
		}
	}
	dctx, dcancel := b.s.datastoreContext(ctx)
	return dctx, dcancel, nil
}

// waitReady waits (at most readyWait) for calyx-node to have read the
// datastore.
func (b *dockerBackend) waitReady(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	if b.s.view.waitReady(wctx) != nil {
		return errNotReady
	}
	return nil
}

func (b *dockerBackend) Pools(ctx context.Context) ([]docker.Pool, error) {
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	_, pools := b.s.view.nodeAndPools()
	var out []docker.Pool
	for _, p := range pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || p.Spec.Disabled {
			continue
		}
		out = append(out, docker.Pool{Name: p.Metadata.Name, CIDR: cidr.Masked()})
	}
	return out, nil
}

func (b *dockerBackend) Allocate(ctx context.Context, req docker.AddressRequest) (netip.Addr, error) {
	ctx, cancel, err := b.begin(ctx, true)
	if err != nil {
		return netip.Addr{}, err
	}
	defer cancel()
	s := b.s
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	handle := dockerAddrPrefix + hex.EncodeToString(rnd[:])
	attrs := map[string]string{"node": s.node, "orchestrator": api.OrchestratorDocker}
	if req.Pool != "" {
		attrs["pool"] = req.Pool
	}
	if req.Addr.IsValid() {
		if req.Pool != "" {
			if err := b.checkInPool(req.Addr, req.Pool); err != nil {
				return netip.Addr{}, err
			}
		}
		err := s.alloc.AssignIP(ctx, ipam.AssignIPArgs{IP: req.Addr, Handle: handle, Attrs: attrs, Node: s.node})
		if err != nil {
			return netip.Addr{}, s.outageError(ctx, fmt.Errorf("--ip %s: %w", req.Addr, s.ipamError(err)))
		}
		s.countAllocations([]netip.Addr{req.Addr})
		return req.Addr, nil
	}
	args := ipam.AutoAssignArgs{Handle: handle, Attrs: attrs, Node: s.node}
	var pools []string
	if req.Pool != "" {
		pools = []string{req.Pool}
	}
	if req.V6 {
		args.Num6, args.IPv6Pools = 1, pools
	} else {
		args.Num4, args.IPv4Pools = 1, pools
	}
	res, err := s.alloc.AutoAssign(ctx, args)
	if err != nil {
		return netip.Addr{}, s.outageError(ctx, s.ipamError(err))
	}
	got := slices.Concat(res.IPv4, res.IPv6)
	if len(got) != 1 {
		return netip.Addr{}, fmt.Errorf("allocating an address: got %d addresses, expected one", len(got))
	}
	s.countAllocations(got)
	return got[0], nil
}

// checkInPool refuses an --ip outside the network's pool.
func (b *dockerBackend) checkInPool(a netip.Addr, pool string) error {
	_, pools := b.s.view.nodeAndPools()
	for _, p := range pools {
		if p.Metadata.Name != pool {
			continue
		}
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && cidr.Contains(a) {
			return nil
		}
		return badRequestf("--ip %s is not in the network's pool %s (%s)", a, pool, p.Spec.CIDR)
	}
	return badRequestf("the network's pool %s no longer exists", pool)
}

// Release releases an address Allocate handed out. An address no longer
// allocated, or allocated to anything but a Docker request of this node,
// is left alone: ReleaseAddress names only the address, and after garbage
// collection it may have gone to someone else.
func (b *dockerBackend) Release(ctx context.Context, addr netip.Addr) error {
	ctx, cancel, err := b.begin(ctx, false)
	if err != nil {
		return err
	}
	defer cancel()
	return b.s.outageError(ctx, b.releaseAddr(ctx, addr))
}

func (b *dockerBackend) releaseAddr(ctx context.Context, addr netip.Addr) error {
	s := b.s
	unlock, err := s.locks.lock(ctx, "docker address "+addr.String())
	if err != nil {
		return err
	}
	defer unlock()
	for _, w := range s.view.endpoints() {
		if w.Spec.Node == s.node && w.Metadata.Annotations[AnnotationDockerEndpoint] != "" && heldBy(w, addr) {
			return b.releaseHeld(ctx, w, addr)
		}
	}
	return s.releaseDockerAddr(ctx, addr)
}

// releaseHeld answers a ReleaseAddress for an address a Docker endpoint
// still holds. dockerd, restarted after a crash, releases the addresses
// of the containers it stops without calling Leave or DeleteEndpoint (its
// cleanup does not load the driver): when the endpoint's veth is gone
// with its sandbox, the endpoint is released with its address now.
// Otherwise the address is left alone (a ReleaseAddress replayed after
// the address went to a new container), and garbage collection releases
// the endpoint once dockerd no longer lists it.
func (b *dockerBackend) releaseHeld(ctx context.Context, w *api.WorkloadEndpoint, addr netip.Addr) error {
	s := b.s
	handle := w.Metadata.Annotations[AnnotationHandle]
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer unlock()
	if w = s.view.endpoint(w.Metadata.Name); w == nil || !heldBy(w, addr) {
		return nil // released meanwhile
	}
	joined := w.Spec.ContainerID != ""
	up, err := s.host.HasLink(ctx, w.Spec.InterfaceName)
	if err != nil {
		return err
	}
	if !joined || up {
		b.log.Info("not releasing an address a Docker endpoint holds", "ip", addr, "endpoint", w.Metadata.Name)
		return nil
	}
	if err := s.release(ctx, handle, w); err != nil {
		return err
	}
	b.log.Info("released a Docker endpoint whose sandbox is gone: dockerd released its address without leaving", "endpoint", w.Metadata.Name, "ip", addr)
	return nil
}

// heldBy reports whether the endpoint has the address.
func heldBy(w *api.WorkloadEndpoint, a netip.Addr) bool {
	for _, e := range endpointAddrs(w) {
		if e == a {
			return true
		}
	}
	return false
}

// endpoint returns the Docker endpoint with this ID from the view, or
// from the datastore when lookup is set; nil when there is none.
func (b *dockerBackend) endpoint(ctx context.Context, id string, lookup bool) (*api.WorkloadEndpoint, error) {
	name := dockerEndpointName(b.s.node, id)
	if w := b.s.view.endpoint(name); w != nil && belongs(w, dockerHandle(id)) {
		return w, nil
	}
	if !lookup {
		return nil, nil
	}
	r, err := b.s.store.Get(ctx, wepKind(), name)
	switch {
	case datastore.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading endpoint %s: %w", name, err)
	}
	w := r.(*api.WorkloadEndpoint)
	if !belongs(w, dockerHandle(id)) {
		return nil, attachmentExistsf("endpoint %s belongs to another attachment (handle %s)", name, w.Metadata.Annotations[AnnotationHandle])
	}
	return w, nil
}

func (b *dockerBackend) CreateEndpoint(ctx context.Context, ep docker.Endpoint) (string, error) {
	ctx, cancel, err := b.begin(ctx, true)
	if err != nil {
		return "", err
	}
	defer cancel()
	s := b.s
	handle := dockerHandle(ep.ID)
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return "", err
	}
	defer unlock()
	if cur, err := b.endpoint(ctx, ep.ID, true); err != nil {
		return "", s.outageError(ctx, err)
	} else if cur != nil {
		return cur.Spec.MAC, nil // a retried CreateEndpoint
	}
	mac := ep.MAC
	if mac == "" {
		mac = containerMAC(handle).String()
	} else if hw, err := net.ParseMAC(mac); err == nil {
		mac = hw.String()
	} else {
		return "", badRequestf("--mac-address %q: %v", ep.MAC, err)
	}
	w, err := s.createEndpoint(ctx, endpointSpec{
		name: dockerEndpointName(s.node, ep.ID), handle: handle, orchestrator: api.OrchestratorDocker, network: ep.Network,
		workload: api.OrchestratorDocker, endpoint: ep.ID, addrs: ep.Addrs, mac: mac, // workload: the container is named at Join
		annotations: map[string]string{AnnotationDockerEndpoint: ep.ID, AnnotationDockerNetwork: ep.NetworkID},
	})
	if err != nil {
		return "", s.outageError(ctx, err)
	}
	b.log.Debug("docker endpoint created", "endpoint", w.Metadata.Name, "network", ep.Network, "ips", w.Spec.IPNetworks)
	return mac, nil
}

func (b *dockerBackend) Join(ctx context.Context, j docker.Join) (docker.Joined, error) {
	ctx, cancel, err := b.begin(ctx, true)
	if err != nil {
		return docker.Joined{}, err
	}
	defer cancel()
	s := b.s
	handle := dockerHandle(j.EndpointID)
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return docker.Joined{}, err
	}
	defer unlock()
	w, err := b.endpoint(ctx, j.EndpointID, true)
	if err != nil {
		return docker.Joined{}, s.outageError(ctx, err)
	}
	if w == nil {
		return docker.Joined{}, notFoundf("no endpoint %s on this node: Join must follow CreateEndpoint", j.EndpointID)
	}
	if w, err = b.recordContainer(ctx, w, j); err != nil {
		return docker.Joined{}, s.outageError(ctx, err)
	}
	mac, err := net.ParseMAC(w.Spec.MAC)
	if err != nil {
		return docker.Joined{}, fmt.Errorf("endpoint %s: spec.mac %q: %w", w.Metadata.Name, w.Spec.MAC, err)
	}
	mtu := s.mtu
	if mtu <= 0 {
		mtu = s.derivedMTU()
	}
	temp := dockerTempName(handle)
	if err := b.kernel.addVeth(w.Spec.InterfaceName, temp, mac, mtu); err != nil {
		return docker.Joined{}, err
	}
	start := s.now()
	if err := s.dp.waitProgrammed(ctx, w.Metadata.Name, s.view.touch(w.Metadata.Name)); err != nil {
		_ = s.dp.removeEndpoint(context.WithoutCancel(ctx), hostEndpoint(w))
		return docker.Joined{}, fmt.Errorf("endpoint %s: %w", w.Metadata.Name, err)
	}
	s.m.program.Observe(s.now().Sub(start).Seconds())
	var out docker.Joined
	out.TempIfName = temp
	var gws []netip.Addr
	for _, a := range endpointAddrs(w) {
		if a.Is4() {
			out.Gateway4 = netip.MustParseAddr(gateway4)
			gws = append(gws, out.Gateway4)
		} else {
			// The host end's link-local address may still be tentative
			// (duplicate address detection) when the container starts:
			// the entry spares the container resolving it.
			out.Gateway6 = netip.MustParseAddr(gateway6)
			gws = append(gws, out.Gateway6)
		}
	}
	b.startContainerSide(j.EndpointID, j.SandboxKey, mac, gws)
	b.log.Debug("docker endpoint joined", "endpoint", w.Metadata.Name, "container", j.Container.Name, "labels", j.Container.Labels)
	return out, nil
}

// recordContainer writes the container and its labels onto the endpoint
// (once: a retried Join finds them there), retrying once on a concurrent
// change.
func (b *dockerBackend) recordContainer(ctx context.Context, w *api.WorkloadEndpoint, j docker.Join) (*api.WorkloadEndpoint, error) {
	network := w.Metadata.Annotations[AnnotationDockerNetwork]
	for attempt := 0; ; attempt++ {
		labels := endpointLabels(j.Container.Labels, j.Network, api.OrchestratorDocker)
		if maps.Equal(labels, w.Metadata.Labels) && w.Spec.Workload == j.Container.Name && w.Spec.ContainerID == j.Container.ID &&
			w.Metadata.Annotations[AnnotationNetns] == j.SandboxKey {
			return w, nil
		}
		upd := w.DeepCopyResource().(*api.WorkloadEndpoint)
		upd.Metadata.Labels = labels
		upd.Metadata.Annotations[AnnotationNetns] = j.SandboxKey
		upd.Spec.Workload, upd.Spec.ContainerID = j.Container.Name, j.Container.ID
		if err := upd.Validate(); err != nil {
			return nil, badRequestf("container %s: its %s labels: %w", j.Container.Name, docker.LabelPrefix, err)
		}
		out, err := b.s.store.Update(ctx, upd)
		if err == nil {
			w = out.(*api.WorkloadEndpoint)
			b.s.view.wroteEndpoint(w)
			return w, nil
		}
		if !datastore.IsConflict(err) || attempt > 0 {
			return nil, fmt.Errorf("recording container %s on endpoint %s (network %s): %w", j.Container.Name, w.Metadata.Name, network, err)
		}
		cur, gerr := b.s.store.Get(ctx, wepKind(), w.Metadata.Name)
		if gerr != nil {
			return nil, fmt.Errorf("recording container %s on endpoint %s: %w", j.Container.Name, w.Metadata.Name, gerr)
		}
		w = cur.(*api.WorkloadEndpoint)
	}
}

// containerSideLimit bounds the wait for the container end to reach its
// sandbox: dockerd creates the container's namespace, and libnetwork
// moves the interface there, only when runc runs the container's
// prestart hook, which may be slow on a loaded host.
const containerSideLimit = 2 * time.Minute

// startContainerSide adds the gateway neighbour entries inside the
// sandbox once libnetwork has moved the container end there, so that the
// gateway answers on hosts without a default route, where proxy ARP
// would not. That happens after Join has returned, in the container's
// prestart hook (Docker creates the sandbox's namespace only then), just
// before the container's process starts; the entries follow within
// milliseconds, and a first packet sent before them waits in the
// neighbour queue, which the permanent entry releases.
func (b *dockerBackend) startContainerSide(id, sandbox string, mac net.HardwareAddr, gws []netip.Addr) {
	if len(gws) == 0 || sandbox == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerSideLimit)
	b.mu.Lock()
	if prev := b.sides[id]; prev != nil {
		prev()
	}
	b.sides[id] = cancel
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer cancel()
		for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
			found, err := b.kernel.gatewayNeighbours(sandbox, mac, gws)
			switch {
			case err != nil:
				b.log.Warn("adding the gateway neighbour entries in a Docker sandbox", "endpoint", id, "sandbox", sandbox, "err", err)
				return
			case found:
				return
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					b.log.Warn("the container end of a Docker endpoint never reached its sandbox", "endpoint", id, "sandbox", sandbox, "mac", mac.String())
				}
				return
			case <-time.After(delay):
			}
		}
	}()
}

// stopContainerSide stops the endpoint's wait for its sandbox, if any.
func (b *dockerBackend) stopContainerSide(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cancel := b.sides[id]; cancel != nil {
		cancel()
		delete(b.sides, id)
	}
}

// close stops every wait for a sandbox and waits for them to end.
func (b *dockerBackend) close() {
	b.mu.Lock()
	for id, cancel := range b.sides {
		cancel()
		delete(b.sides, id)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *dockerBackend) Leave(ctx context.Context, id string) error {
	s := b.s
	handle := dockerHandle(id)
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer unlock()
	b.stopContainerSide(id)
	w, _ := b.endpoint(ctx, id, false) // the view: Leave must work while etcd is down
	return s.releaseHost(ctx, handle, w)
}

func (b *dockerBackend) DeleteEndpoint(ctx context.Context, id string) error {
	ctx, cancel, err := b.begin(ctx, false)
	if err != nil {
		return err
	}
	defer cancel()
	s := b.s
	handle := dockerHandle(id)
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer unlock()
	w, err := b.endpoint(ctx, id, s.unavailable() == nil)
	if err != nil {
		return s.outageError(ctx, err)
	}
	if err := s.releaseHost(ctx, handle, w); err != nil {
		return err
	}
	if w == nil {
		return nil
	}
	err = s.outageError(ctx, s.deleteEndpoint(ctx, w))
	if isOutage(err) {
		// The endpoint, whose veth is gone, is garbage collection's
		// once etcd is back; Docker's teardown goes on.
		b.log.Warn("DeleteEndpoint left the endpoint to garbage collection: the datastore is down", "endpoint", w.Metadata.Name, "err", err)
		return nil
	}
	return err
}

// releaseDockerAddrs releases the addresses of a Docker endpoint being
// collected, which ReleaseAddress would have released had dockerd sent it.
func (s *service) releaseDockerAddrs(ctx context.Context, w *api.WorkloadEndpoint) error {
	var errs []error
	for _, a := range endpointAddrs(w) {
		if err := s.releaseDockerAddr(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", w.Metadata.Name, err))
		}
	}
	return errors.Join(errs...)
}

// releaseDockerAddr releases an address when a Docker request of this
// node holds it (its own handle, dockerAddrPrefix); anything else, or
// nothing, is left alone.
func (s *service) releaseDockerAddr(ctx context.Context, a netip.Addr) error {
	as, err := s.alloc.GetAssignment(ctx, a)
	switch {
	case ipam.IsNotInPool(err):
		return nil
	case err != nil:
		return fmt.Errorf("releasing %s: %w", a, err)
	case !as.Allocated || !strings.HasPrefix(as.Handle, dockerAddrPrefix) || as.Attrs["node"] != s.node:
		return nil
	}
	if err := s.alloc.ReleaseByHandle(ctx, as.Handle); err != nil {
		return fmt.Errorf("releasing %s: %w", a, err)
	}
	return nil
}
