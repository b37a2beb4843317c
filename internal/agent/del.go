package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
)

// del serves a CNI DEL. It is idempotent and never fails because something
// is already gone: it removes the host side (veth, routes, neighbours,
// policy), deletes the endpoint and releases the handle's addresses, in
// that order, so that an address is free only once nothing routes to it
// and no endpoint claims it.
//
// While the datastore is down (or does not answer within the datastore
// timeout), DEL removes the host side and succeeds, so that a runtime can
// tear containers down during an etcd outage: the endpoint, whose veth is
// now gone, and its addresses are released by garbage collection once
// etcd is back (an attachment whose endpoint was never seen leaves a
// handle no endpoint holds, which the collector releases too). So does it
// while the node claim lapsed in an outage is being taken again. Its wait
// for the handle's lock is bounded by the datastore timeout too (see
// delBusy).
func (s *service) del(ctx context.Context, req localapi.DelRequest) error {
	if err := checkAttachment(req.Attachment); err != nil {
		return err
	}
	handle := req.Handle()
	lctx, lcancel := s.datastoreContext(ctx)
	unlock, err := s.locks.lock(lctx, handle)
	if err != nil {
		err = s.delBusy(ctx, lctx, req, err)
		lcancel()
		return err
	}
	lcancel()
	defer unlock()
	s.adds.done(handle)
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	down := s.unavailable()
	w, _, err := s.findEndpoint(dctx, req.Attachment, down == nil)
	if err != nil {
		if err = s.outageError(dctx, err); !isOutage(err) {
			return err
		}
		down = err
	}
	release := s.releaseHost
	deferVeth := req.DeferVethDelete && s.reaper != nil
	if req.PluginDeletesVeth || deferVeth {
		release = s.unrouteHost
	}
	if err := release(ctx, handle, w); err != nil {
		return err
	}
	if deferVeth {
		// Unrouted: the veth goes once DEL has answered, whatever else
		// fails (a failed DEL is retried, and unroutes nothing again).
		ifName := vethName(handle)
		if w != nil {
			ifName = w.Spec.InterfaceName
		}
		defer s.reaper.reap(ifName)
	}
	if down == nil {
		// A lapsed claim (being taken again after an outage) refuses the
		// release like an outage does, and is treated like one.
		err := s.releaseStore(dctx, handle, w)
		if err = s.outageError(dctx, err); !isOutage(err) && !errors.Is(err, errClaimLapsed) {
			return err
		}
		down = err
	}
	if down != nil {
		s.log.Warn("DEL removed the host side without the datastore: garbage collection releases the endpoint and addresses once etcd is back",
			"handle", handle, "hostIf", vethName(handle), "err", down)
	}
	return nil
}

// delBusy serves a DEL that did not get its handle's lock within the
// datastore timeout (lctx, which ended with waitErr). Every holder of a
// handle lock bounds its etcd work by the same timeout, so this happens
// only when a holder is stuck on a datastore that stopped answering in
// the moment before the health monitor noticed, or when work on the
// attachment is slow.
//
// While etcd is down, the host side is removed without the lock and the
// DEL succeeds, as it does under the lock: a runtime must be able to tear
// containers down during an outage, and code 11 would fail its teardown
// for as long as the outage lasts (not every runtime retries a failed
// DEL). Removing the host side alongside the holder is safe: deleting a
// veth, routes or policy that is already gone is not an error; the
// endpoint and addresses are left to garbage collection, which takes the
// lock; and should the holder be an ADD of the attachment that builds its
// veth afterwards, that veth goes with the container's network namespace
// and the collector releases the endpoint it leaves.
//
// While etcd answers, the holder is making progress: the DEL fails with
// code 11 rather than give up the lock's ordering, and the runtime's retry
// finds the lock free.
func (s *service) delBusy(ctx, lctx context.Context, req localapi.DelRequest, waitErr error) error {
	handle := req.Handle()
	down := s.outageError(lctx, waitErr)
	if !datastore.IsUnavailable(down) {
		if !errors.Is(context.Cause(lctx), errDatastoreDeadline) {
			return waitErr // the request itself ended
		}
		return fmt.Errorf("DEL of container %s ifname %s: another operation on the attachment did not finish within %s: %w",
			req.ContainerID, req.IfName, s.dsTimeout, errAttachmentBusy)
	}
	s.adds.done(handle)
	w, _, _ := s.findEndpoint(ctx, req.Attachment, false) // the view only: etcd is down
	if err := s.releaseHost(ctx, handle, w); err != nil {
		return err
	}
	s.log.Warn("DEL removed the host side without the attachment's lock, held by an operation waiting on the datastore: garbage collection releases the endpoint and addresses once etcd is back",
		"handle", handle, "hostIf", vethName(handle), "err", down)
	return nil
}

// release undoes everything calyx-node holds for the attachment with this
// handle, whose endpoint is w (nil: none); the caller holds the handle's
// lock.
func (s *service) release(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	if err := s.releaseHost(ctx, handle, w); err != nil {
		return err
	}
	return s.releaseStore(ctx, handle, w)
}

// releaseHost removes an attachment's host side (veth, routes,
// neighbours) through the reconcile loop. Its policy goes when the loop
// sees the endpoint deleted; until then the interface is gone, so nothing
// can use it.
func (s *service) releaseHost(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	ep := route.Endpoint{Name: handle, IfName: vethName(handle)}
	if w != nil {
		ep = hostEndpoint(w)
	}
	return s.dp.removeEndpoint(ctx, ep)
}

// unrouteHost is releaseHost for a DEL whose plugin deletes the veth
// itself meanwhile: only the endpoint's routes go here, before its
// addresses are released.
func (s *service) unrouteHost(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	ep := route.Endpoint{Name: handle, IfName: vethName(handle)}
	if w != nil {
		ep = hostEndpoint(w)
	}
	return s.dp.unrouteEndpoint(ctx, ep)
}

// releaseStore deletes an attachment's endpoint (w, nil: none) and releases
// its addresses, once its host side is gone.
func (s *service) releaseStore(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	// The host side is gone, so nothing routes to the addresses any more:
	// deleting the endpoint and releasing its addresses are independent
	// etcd writes, sent together so that etcd can commit them in one
	// fsync. A released address goes to the back of its block's free list,
	// so it is not handed out again in the moment between the two.
	var epErr error
	var wg sync.WaitGroup
	if w != nil {
		wg.Go(func() { epErr = s.deleteEndpoint(ctx, w) })
	}
	var errs []error
	if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil {
		errs = append(errs, fmt.Errorf("releasing the addresses of %s: %w", handle, err))
	}
	if w != nil && w.Metadata.Annotations[AnnotationDockerEndpoint] != "" {
		// A Docker endpoint's addresses have handles of their own.
		errs = append(errs, s.releaseDockerAddrs(ctx, w))
	}
	wg.Wait()
	errs = append(errs, epErr)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Debug("attachment released", "handle", handle)
	return nil
}

// deleteEndpoint deletes the endpoint w names; a missing one is fine.
func (s *service) deleteEndpoint(ctx context.Context, w *api.WorkloadEndpoint) error {
	name := w.Metadata.Name
	prev, err := s.store.Delete(ctx, wepKind(), name, "")
	switch {
	case datastore.IsNotFound(err):
		s.view.deletedEndpoint(name, revisionOf(w))
		return nil
	case err != nil:
		return fmt.Errorf("deleting endpoint %s: %w", name, err)
	}
	s.view.deletedEndpoint(name, revisionOf(prev))
	return nil
}
