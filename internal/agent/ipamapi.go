package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// ipamAdd serves calyx-ipam used as the IPAM plugin of another CNI plugin
// (e.g. bridge): addresses only, keyed by the attachment's handle, with
// the pool's prefix length and no gateway (bridge derives its own). No
// endpoint is written, so these allocations are marked and the
// endpoint-less handle collector leaves them alone; DEL and CNI GC
// release them.
func (s *service) ipamAdd(ctx context.Context, req localapi.IPAMAddRequest) (localapi.IPAMAddResponse, error) {
	if err := checkAttachment(req.Attachment); err != nil {
		return localapi.IPAMAddResponse{}, err
	}
	unlock, err := s.locks.lock(ctx, req.Handle())
	if err != nil {
		return localapi.IPAMAddResponse{}, err
	}
	defer unlock()
	if err := s.completeDeferred(ctx, req.Handle()); err != nil {
		return localapi.IPAMAddResponse{}, err
	}
	addrs, _, err := s.allocate(ctx, req.Attachment, api.OrchestratorCNI, req.IPAM, map[string]string{ipam.AttrIPAMOnly: "true"}, nil)
	if err != nil {
		return localapi.IPAMAddResponse{}, err
	}
	var resp localapi.IPAMAddResponse
	for _, a := range addrs {
		p, err := s.poolPrefix(ctx, a)
		if err != nil {
			return localapi.IPAMAddResponse{}, err
		}
		resp.IPs = append(resp.IPs, localapi.IPAMAddress{Address: netip.PrefixFrom(a, p.Bits()).String()})
	}
	return resp, nil
}

// poolPrefix returns the prefix of the pool holding a: from the view, or
// from IPAM when the view has not seen the pool yet.
func (s *service) poolPrefix(ctx context.Context, a netip.Addr) (netip.Prefix, error) {
	if p, ok := s.view.poolPrefix(a); ok {
		return p, nil
	}
	as, err := s.alloc.GetAssignment(ctx, a)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("finding the pool of %s: %w", a, err)
	}
	return as.PoolCIDR, nil
}

// ipamDel releases an attachment's addresses; nothing to release is fine.
// While the datastore is down (or does not answer within the datastore
// timeout), the release is queued in the data directory and done once etcd
// is back, and the DEL succeeds, so that a runtime can tear containers down
// during an outage (see deferred.go).
func (s *service) ipamDel(ctx context.Context, req localapi.IPAMDelRequest) error {
	if err := checkAttachment(req.Attachment); err != nil {
		return err
	}
	handle := req.Handle()
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		// The holder is stuck on the datastore, or the request ended.
		return s.deferRelease(ctx, handle, err)
	}
	defer unlock()
	if down := s.unavailable(); down != nil {
		return s.deferRelease(ctx, handle, down)
	}
	if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil {
		return s.deferRelease(ctx, handle, fmt.Errorf("releasing the addresses of %s: %w", handle, err))
	}
	if s.deferred != nil {
		// An earlier DEL's queued release is done too.
		if err := s.deferred.remove(handle); err != nil {
			return err
		}
	}
	return nil
}
