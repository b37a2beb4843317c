package agent

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
)

// ready serves a CNI READY: the plugin has created the veth, so program
// the host side (sysctls, veth up, routes, neighbour entries, policy),
// then answer. It returns the time the kernel work took.
//
// ADD recorded the container MAC it chose on the endpoint and the plugin
// created the container end with it, so READY normally writes nothing to
// the datastore. Only when the plugin reports another MAC (an older
// plugin that ignored AddResponse.ContainerMAC, or an endpoint written by
// an older calyx-node) does READY record it, so that a restarted
// calyx-node programs the same neighbour entries. That write and the
// kernel work run concurrently: the first costs one etcd round trip, the
// second well under a millisecond.
func (s *service) ready(ctx context.Context, req localapi.ReadyRequest) (time.Duration, error) {
	if err := checkAttachment(req.Attachment); err != nil {
		return 0, err
	}
	mac, err := net.ParseMAC(req.ContainerMAC)
	if err != nil {
		return 0, badRequestf("containerMAC %q is not a MAC address", req.ContainerMAC)
	}
	handle := req.Handle()
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return 0, err
	}
	defer unlock()
	w, _, err := s.findEndpoint(ctx, req.Attachment, true)
	if err != nil {
		return 0, err
	}
	if w == nil {
		return 0, notFoundf("no endpoint for %s on this node: READY must follow a successful ADD", handle)
	}
	if req.HostIfName != "" && req.HostIfName != w.Spec.InterfaceName {
		return 0, badRequestf("hostIfName %q: the endpoint %s has host interface %s", req.HostIfName, w.Metadata.Name, w.Spec.InterfaceName)
	}

	recorded := make(chan error, 1)
	if w.Spec.MAC == mac.String() {
		recorded <- nil
	} else {
		go func() { recorded <- s.recordMAC(ctx, w, mac.String()) }()
	}

	ep := hostEndpoint(w)
	ep.MAC = mac
	start := s.now()
	err = s.host.Update(ctx, ep)
	took := s.now().Sub(start)
	if err == nil {
		err = s.policy.Apply(ctx, w)
	}
	rerr := <-recorded
	if route.IsLinkNotFound(err) {
		return took, badRequestf("host interface %s does not exist: create the veth (host end in calyx-node's namespace) before READY", w.Spec.InterfaceName)
	}
	if err != nil {
		return took, err
	}
	s.m.program.Observe(took.Seconds())
	if rerr != nil {
		return took, rerr
	}
	s.adds.done(handle)
	s.log.Debug("endpoint programmed", "endpoint", w.Metadata.Name, "hostIf", ep.IfName, "netlinkSeconds", took.Seconds())
	return took, nil
}

// recordMAC writes the container's MAC into the endpoint (so that a
// restarted calyx-node programs the same neighbour entries), retrying once
// on a concurrent change.
func (s *service) recordMAC(ctx context.Context, w *api.WorkloadEndpoint, mac string) error {
	for attempt := 0; ; attempt++ {
		if w.Spec.MAC == mac {
			return nil
		}
		upd := w.DeepCopyResource().(*api.WorkloadEndpoint)
		upd.Spec.MAC = mac
		out, err := s.store.Update(ctx, upd)
		if err == nil {
			s.view.wroteEndpoint(out.(*api.WorkloadEndpoint))
			return nil
		}
		if !datastore.IsConflict(err) || attempt > 0 {
			return fmt.Errorf("recording the MAC of endpoint %s: %w", w.Metadata.Name, err)
		}
		cur, gerr := s.store.Get(ctx, wepKind(), w.Metadata.Name)
		if gerr != nil {
			return fmt.Errorf("recording the MAC of endpoint %s: %w", w.Metadata.Name, gerr)
		}
		w = cur.(*api.WorkloadEndpoint)
	}
}
