package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// The side effects of the local API, each behind the small interface this
// package needs. *datastore.Client, *ipam.Allocator and *route.Reconciler
// satisfy them.

// resourceStore reads and writes endpoints and profiles.
type resourceStore interface {
	Get(ctx context.Context, kind api.KindInfo, name string) (api.Resource, error)
	Create(ctx context.Context, r api.Resource) (api.Resource, error)
	Update(ctx context.Context, r api.Resource) (api.Resource, error)
	Delete(ctx context.Context, kind api.KindInfo, name, resourceVersion string) (api.Resource, error)
	// PrepareCreate encodes a resource for creation inside IPAM's
	// transaction (ipam.AutoAssignArgs.Also).
	PrepareCreate(r api.Resource) (datastore.PreparedCreate, error)
}

// allocator hands out and takes back addresses.
type allocator interface {
	AutoAssign(ctx context.Context, args ipam.AutoAssignArgs) (ipam.AssignResult, error)
	AssignIP(ctx context.Context, args ipam.AssignIPArgs) error
	ReleaseByHandle(ctx context.Context, handle string) error
	IPsByHandle(ctx context.Context, handle string) ([]netip.Addr, error)
	GetAssignment(ctx context.Context, ip netip.Addr) (ipam.Assignment, error)
	NodeAllocations(ctx context.Context, node string, includeBorrowed bool) ([]ipam.Allocation, error)
}

// hostInspector reads an endpoint's host side; it never writes.
type hostInspector interface {
	Check(ctx context.Context, ep route.Endpoint) ([]string, error)
	HasLink(ctx context.Context, name string) (bool, error)
	// LinkNames lists every interface, in one dump.
	LinkNames(ctx context.Context) (map[string]bool, error)
}

// dataplaneWriter is the reconcile loop as the local API uses it: the loop
// is the only writer of the kernel, so operations ask it and wait.
type dataplaneWriter interface {
	// waitProgrammed waits until the loop has programmed the view up to
	// seq (view.touch's result) with the endpoint in it.
	waitProgrammed(ctx context.Context, name string, seq uint64) error
	// programmedSince waits until the loop has drained the view up to
	// seq and reports whether a pass since then programmed the endpoint.
	programmedSince(ctx context.Context, name string, seq uint64) bool
	// removeEndpoint removes an endpoint's veth, routes and neighbours.
	removeEndpoint(ctx context.Context, ep route.Endpoint) error
	// unrouteEndpoint removes an endpoint's routes and leaves its veth,
	// which the caller is deleting.
	unrouteEndpoint(ctx context.Context, ep route.Endpoint) error
}

var (
	_ resourceStore   = (*datastore.Client)(nil)
	_ allocator       = (*ipam.Allocator)(nil)
	_ hostInspector   = (*route.Reconciler)(nil)
	_ dataplaneWriter = (*reconcileLoop)(nil)
)

// service implements the local API's operations.
type service struct {
	node  string
	log   *slog.Logger
	store resourceStore
	alloc allocator
	host  hostInspector
	dp    dataplaneWriter
	view  *view
	locks *handleLocks
	adds  *pendingAdds // answered ADDs awaiting READY
	m     *metrics
	mtu   int // 0: derivedMTU
	// underlayMTU reads the MTU of the interface holding an address
	// (nil: DefaultMTU).
	underlayMTU func(netip.Addr) (int, error)
	now         func() time.Time
	// ds says whether the datastore is down (nil: never); dsTimeout bounds
	// the datastore work of one request (0: unbounded).
	ds        datastoreHealth
	dsTimeout time.Duration
	claim     nodeClaim // held while this process acts for node
	// deferred queues the IPAM releases of DELs served during a datastore
	// outage (nil: none are queued, such DELs fail).
	deferred *deferredReleases
	// reaper deletes the veths of DELs that let it (nil: DEL deletes
	// them before answering).
	reaper *reaper
}

// Gateways the container routes through: Calico's link-local IPv4
// address, answered by proxy ARP on the host veth, and the IPv6 link-local
// address the kernel derives from the host veth's MAC ee:ee:ee:ee:ee:ee
// (EUI-64), which the plugin also sets on the host end.
const (
	gateway4 = "169.254.1.1"
	gateway6 = "fe80::ecee:eeff:feee:eeee"
)

// wepKind and profileKind are the kinds the local API writes.
func wepKind() api.KindInfo     { k, _ := api.LookupKind(api.KindWorkloadEndpoint); return k }
func profileKind() api.KindInfo { k, _ := api.LookupKind(api.KindProfile); return k }

// checkAttachment refuses an attachment that cannot name anything.
func checkAttachment(a localapi.Attachment) error {
	switch {
	case a.Network == "":
		return badRequestf("no network name given")
	case a.ContainerID == "":
		return badRequestf("no container ID given")
	case a.IfName == "":
		return badRequestf("no interface name given")
	}
	return nil
}

// candidateNames are the endpoint names an attachment may have on this
// node: DEL and READY do not say which orchestrator the ADD named.
func (s *service) candidateNames(a localapi.Attachment) []string {
	return []string{
		endpointName(s.node, api.OrchestratorMesos, a.ContainerID, a.IfName),
		endpointName(s.node, api.OrchestratorCNI, a.ContainerID, a.IfName),
	}
}

// belongs reports whether w is the endpoint of the attachment with this
// handle (and not, say, the same container interface on another network).
func belongs(w *api.WorkloadEndpoint, handle string) bool {
	if h, ok := w.Metadata.Annotations[AnnotationHandle]; ok {
		return h == handle
	}
	return false
}

// findEndpoint returns the attachment's endpoint from the view, or when
// the view has none and lookup is set, from the datastore. It returns nil
// when there is none, and the other attachment's endpoint with other set
// when the container interface belongs to another network.
func (s *service) findEndpoint(ctx context.Context, a localapi.Attachment, lookup bool) (w, other *api.WorkloadEndpoint, err error) {
	handle := a.Handle()
	names := s.candidateNames(a)
	for _, name := range names {
		if cur := s.view.endpoint(name); cur != nil {
			if belongs(cur, handle) {
				return cur, nil, nil
			}
			other = cur
		}
	}
	if !lookup || other != nil {
		return nil, other, nil
	}
	for _, name := range names {
		r, err := s.store.Get(ctx, wepKind(), name)
		switch {
		case datastore.IsNotFound(err):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("reading endpoint %s: %w", name, err)
		}
		cur := r.(*api.WorkloadEndpoint)
		if belongs(cur, handle) {
			return cur, nil, nil
		}
		other = cur
	}
	return nil, other, nil
}

// endpointAddrs parses an endpoint's ipNetworks.
func endpointAddrs(w *api.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, n := range w.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Addr().Unmap())
		} else if a, err := netip.ParseAddr(n); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// hostEndpoint is the route reconciler's view of an endpoint: its veth,
// container MAC (once READY recorded it) and addresses. Pure.
func hostEndpoint(w *api.WorkloadEndpoint) route.Endpoint {
	ep := route.Endpoint{Name: w.Metadata.Name, IfName: w.Spec.InterfaceName, Addrs: endpointAddrs(w)}
	if mac, err := net.ParseMAC(w.Spec.MAC); err == nil {
		ep.MAC = mac
	}
	return ep
}

// hostPrefixes renders addresses as /32 and /128 prefixes.
func hostPrefixes(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = netip.PrefixFrom(a, a.BitLen()).String()
	}
	return out
}

func revisionOf(r api.Resource) int64 {
	rev, _ := strconv.ParseInt(r.GetObjectMeta().ResourceVersion, 10, 64)
	return rev
}

// undoContext is for undoing a failed request's work after the caller has
// gone: not cancelled with the request, but bounded.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}
