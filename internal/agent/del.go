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
func (s *service) del(ctx context.Context, req localapi.DelRequest) error {
	if err := checkAttachment(req.Attachment); err != nil {
		return err
	}
	unlock, err := s.locks.lock(ctx, req.Handle())
	if err != nil {
		return err
	}
	defer unlock()
	s.adds.done(req.Handle())
	return s.releaseAttachment(ctx, req.Attachment)
}

// releaseAttachment undoes everything calyx-node holds for an attachment;
// the caller holds the handle's lock.
func (s *service) releaseAttachment(ctx context.Context, a localapi.Attachment) error {
	w, _, err := s.findEndpoint(ctx, a, true)
	if err != nil {
		return err
	}
	return s.release(ctx, a.Handle(), w)
}

// release undoes everything calyx-node holds for the attachment with this
// handle, whose endpoint is w (nil: none); the caller holds the handle's
// lock.
func (s *service) release(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	ep := route.Endpoint{Name: handle, IfName: vethName(handle)}
	if w != nil {
		ep = hostEndpoint(w)
	}
	var errs []error
	if err := s.host.Delete(ctx, ep); err != nil {
		errs = append(errs, err)
	}
	if w != nil {
		if err := s.policy.Remove(ctx, w.Metadata.Name); err != nil {
			errs = append(errs, err)
		}
	}
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
	if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil {
		errs = append(errs, fmt.Errorf("releasing the addresses of %s: %w", handle, err))
	}
	wg.Wait()
	errs = append(errs, epErr)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Debug("attachment released", "handle", handle, "endpoint", ep.Name)
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
