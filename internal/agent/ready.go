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

// ready serves a CNI READY: the plugin has created the veth, so the host
// side (sysctls, veth up, routes, neighbour entries, policy) can be
// programmed. READY writes nothing to the kernel itself: it marks the
// endpoint for the reconcile loop, the only writer of the dataplane, and
// waits until the loop reports it programmed, so the plugin answers only
// once the container's policy is in force. It returns how long it waited.
//
// ADD recorded the container MAC it chose on the endpoint and the plugin
// created the container end with it, so READY normally writes nothing to
// the datastore. Only when the plugin reports another MAC (an older
// plugin that ignored AddResponse.ContainerMAC, or an endpoint written by
// an older calyx-node) does READY record it first, so that the loop
// programs the neighbour entry for the MAC the container really has.
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
	if err := s.recordMAC(ctx, w, mac.String()); err != nil {
		return 0, err
	}

	start := s.now()
	// The ADD that created the endpoint had the loop program it on
	// seeing the write: when the plugin had created the host end by then
	// (PluginCreatesVeth), that pass did the work. Otherwise (before the
	// veth existed, or an endpoint the ADD found, whose old veth may be
	// gone) the loop programs it again.
	if wrote := s.adds.wrote(handle); wrote == 0 || !s.dp.programmedSince(ctx, w.Metadata.Name, wrote) {
		err = s.dp.waitProgrammed(ctx, w.Metadata.Name, s.view.touch(w.Metadata.Name))
	}
	took := s.now().Sub(start)
	switch {
	case route.IsLinkNotFound(err):
		return took, badRequestf("host interface %s does not exist: create the veth (host end in calyx-node's namespace) before READY", w.Spec.InterfaceName)
	case err != nil:
		return took, fmt.Errorf("endpoint %s: %w", w.Metadata.Name, err)
	}
	s.m.program.Observe(took.Seconds())
	s.adds.done(handle)
	s.log.Debug("endpoint programmed", "endpoint", w.Metadata.Name, "hostIf", w.Spec.InterfaceName, "waitSeconds", took.Seconds())
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
