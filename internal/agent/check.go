package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// check serves a CNI CHECK: it reports what is wrong with the host side of
// an attachment. Problems are answered, not errors: the plugin turns them
// into the CNI error.
func (s *service) check(ctx context.Context, req localapi.CheckRequest) (localapi.CheckResponse, error) {
	if err := checkAttachment(req.Attachment); err != nil {
		return localapi.CheckResponse{}, err
	}
	handle := req.Handle()
	w, _, err := s.findEndpoint(ctx, req.Attachment, true)
	if err != nil {
		return localapi.CheckResponse{}, err
	}
	held, err := s.alloc.IPsByHandle(ctx, handle)
	if err != nil && !ipam.IsNotFound(err) {
		return localapi.CheckResponse{}, err
	}
	if w == nil {
		resp := localapi.CheckResponse{HostIfName: vethName(handle), IPs: hostPrefixes(held)}
		resp.Problems = append(resp.Problems, fmt.Sprintf("no workload endpoint for %s on node %s", handle, s.node))
		return resp, nil
	}
	addrs := endpointAddrs(w)
	resp := localapi.CheckResponse{Endpoint: w.Metadata.Name, HostIfName: w.Spec.InterfaceName, IPs: hostPrefixes(addrs)}
	switch {
	case len(held) == 0:
		resp.Problems = append(resp.Problems, fmt.Sprintf("IPAM handle %s holds no addresses (the endpoint lists %v)", handle, w.Spec.IPNetworks))
	case !sameAddrs(held, addrs):
		resp.Problems = append(resp.Problems, fmt.Sprintf("IPAM handle %s holds %v, the endpoint lists %v", handle, hostPrefixes(held), w.Spec.IPNetworks))
	}
	problems, err := s.host.Check(ctx, hostEndpoint(w))
	if err != nil {
		return localapi.CheckResponse{}, err
	}
	resp.Problems = append(resp.Problems, problems...)
	return resp, nil
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}
