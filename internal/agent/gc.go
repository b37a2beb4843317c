package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
)

// Garbage collection. Containers can vanish without a CNI DEL (Mesos
// without --network_cni_root_dir_persist never sends one after a reboot;
// a crashed agent may lose it), and an ADD can die between allocating and
// writing its endpoint. The collector finds both, by mark and sweep with a
// grace period, time being an input:
//
//   - an endpoint of this node whose host veth has been missing for the
//     grace period is released like a DEL (endpoint deleted, addresses
//     released);
//   - an IPAM handle attributed to this node (a CNI attachment's, not
//     calyx-ipam's under another plugin) that no endpoint has held for the
//     grace period is released.
//
// An attachment whose handle is locked (an ADD, READY or DEL in flight) is
// never a candidate, and a candidate is checked again under its lock
// before anything is released. Every etcd call the collector makes
// bounds itself by the datastore timeout, and the claim is checked before
// the lock is taken, so that a DEL or ADD waiting for the lock never waits
// longer than that for an etcd that stopped answering.

// sweep records each candidate not seen before at now, forgets former
// candidates that are no longer, and returns (sorted) the candidates that
// have been candidates for at least grace. Pure.
func sweep(since map[string]time.Time, candidates []string, now time.Time, grace time.Duration) []string {
	current := map[string]bool{}
	var out []string
	for _, c := range candidates {
		current[c] = true
		first, ok := since[c]
		if !ok {
			since[c] = now
			first = now
		}
		if now.Sub(first) >= grace {
			out = append(out, c)
		}
	}
	maps.DeleteFunc(since, func(k string, _ time.Time) bool { return !current[k] })
	slices.Sort(out)
	return out
}

// collector is the garbage collector's state between passes.
type collector struct {
	s         *service
	log       *slog.Logger
	grace     time.Duration
	scanEvery time.Duration // between IPAM handle scans
	// docker lists the endpoint IDs dockerd knows in calyx networks (nil:
	// the Docker plugin is off). A Docker endpoint dockerd no longer
	// knows (its sandbox was cleaned up while calyx-node was not
	// listening) is collected like one whose veth vanished.
	docker   func(ctx context.Context) (map[string]bool, error)
	vanished map[string]time.Time
	leaked   map[string]time.Time
	// borrowed holds this node's allocations in other nodes' blocks as the
	// last full scan found them (see borrowedScanEvery).
	borrowed []ipam.Allocation
	scans    int // handle scans so far
	lastScan time.Time
}

// borrowedScanEvery is how many handle scans make one full scan. A scan
// reads only the blocks affine to this node (its affinity keys, then those
// blocks), so its cost grows with this node's blocks, not the cluster's.
// Every borrowedScanEvery-th scan reads every block instead, to find the
// addresses this node borrowed from other nodes' blocks: borrowing is rare
// (a node borrows only when it can claim no block of its own), so a leak
// there may wait that many scans longer, and 500 nodes reading every block
// each grace period would cost the datastore far more than the leak.
const borrowedScanEvery = 10

func newCollector(s *service, log *slog.Logger, grace, interval time.Duration) *collector {
	return &collector{
		s: s, log: log, grace: grace, scanEvery: max(grace, interval),
		vanished: map[string]time.Time{}, leaked: map[string]time.Time{},
	}
}

// gcInterval is how often the collector looks: often enough that nothing
// outlives the grace period by much, at most every 15 s.
func gcInterval(grace time.Duration) time.Duration {
	return min(max(grace/4, 50*time.Millisecond), 15*time.Second)
}

// run collects every interval until ctx ends.
func (c *collector) run(ctx context.Context, interval time.Duration) error {
	if err := c.s.view.waitReady(ctx); err != nil {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.pass(ctx, c.s.now())
	}
}

// pass is one round of collection at now. It skips the round while the
// datastore is down: what it would release waits until etcd is back.
func (c *collector) pass(ctx context.Context, now time.Time) {
	if c.s.unavailable() != nil {
		return
	}
	c.collectEndpoints(ctx, now)
	if c.lastScan.IsZero() || now.Sub(c.lastScan) >= c.scanEvery {
		c.lastScan = now
		if err := c.collectHandles(ctx, now); err != nil && ctx.Err() == nil {
			c.log.Warn("collecting IPAM handles no endpoint holds", "err", err)
		}
	}
}

// collectEndpoints releases endpoints whose veth has been gone for the
// grace period.
func (c *collector) collectEndpoints(ctx context.Context, now time.Time) {
	s := c.s
	known := c.dockerEndpoints(ctx)
	// One dump of the links for the whole pass, not a lookup per
	// endpoint: with a thousand endpoints the lookups were a third of
	// calyx-node's idle CPU. A link seen missing here is looked up again
	// under the attachment's lock before anything is released.
	links, err := s.host.LinkNames(ctx)
	if err != nil {
		c.log.Warn("listing the host's interfaces", "err", err)
		return
	}
	var missing []string
	for _, w := range s.view.endpoints() {
		handle := w.Metadata.Annotations[AnnotationHandle]
		if handle == "" || w.Spec.InterfaceName == "" || s.locks.busy(handle) {
			continue
		}
		gone, err := c.gone(ctx, w, known, links)
		if err != nil {
			c.log.Warn("checking an endpoint's host interface", "endpoint", w.Metadata.Name, "err", err)
			continue
		}
		if gone != "" {
			missing = append(missing, w.Metadata.Name)
		}
	}
	for _, name := range sweep(c.vanished, missing, now, c.grace) {
		if err := c.collectEndpoint(ctx, name, known); err != nil && ctx.Err() == nil {
			c.log.Warn("collecting an endpoint whose veth vanished", "endpoint", name, "err", err)
		}
	}
}

// dockerEndpoints returns the endpoint IDs dockerd knows, or nil when the
// Docker plugin is off or dockerd does not answer (then Docker endpoints
// are judged by their veths alone).
func (c *collector) dockerEndpoints(ctx context.Context) map[string]bool {
	if c.docker == nil {
		return nil
	}
	known, err := c.docker(ctx)
	if err != nil {
		c.log.Debug("reading dockerd's endpoints", "err", err)
		return nil
	}
	return known
}

// gone says why the endpoint is to be collected ("" if it is not): its
// veth vanished, or it is a Docker endpoint dockerd (which answered with
// known) no longer has.
// links are the host's interfaces, listed once for a pass (nil: look the
// endpoint's up).
func (c *collector) gone(ctx context.Context, w *api.WorkloadEndpoint, known, links map[string]bool) (string, error) {
	if id := w.Metadata.Annotations[AnnotationDockerEndpoint]; id != "" && known != nil && !known[id] {
		return "dockerd no longer has the endpoint", nil
	}
	ok := links[w.Spec.InterfaceName]
	if links == nil {
		var err error
		if ok, err = c.s.host.HasLink(ctx, w.Spec.InterfaceName); err != nil {
			return "", err
		}
	}
	if ok {
		return "", nil
	}
	if w.Metadata.Annotations[AnnotationDockerEndpoint] != "" && w.Spec.ContainerID == "" {
		// Created, not yet joined: it has no veth yet, and dockerd (if
		// it answered) still has it.
		return "", nil
	}
	return "its host veth vanished", nil
}

// collectEndpoint releases the endpoint, once more found gone under its
// attachment's lock.
func (c *collector) collectEndpoint(ctx context.Context, name string, known map[string]bool) error {
	s := c.s
	w := s.view.endpoint(name)
	if w == nil {
		return nil
	}
	handle := w.Metadata.Annotations[AnnotationHandle]
	// Only the holder of the node's claim may release its endpoints: a
	// second calyx-node with this node's name finds none of its veths.
	if err := s.checkClaimBounded(ctx); err != nil {
		return fmt.Errorf("not releasing endpoint %s: %w", name, err)
	}
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer unlock()
	// Look again under the lock: a retried ADD may have re-created it.
	w = s.view.endpoint(name)
	if w == nil || !belongs(w, handle) {
		return nil
	}
	why, err := c.gone(ctx, w, known, nil)
	if why == "" || err != nil {
		return err
	}
	// Bounded like a request, so that a DEL or ADD waiting for the
	// handle's lock is not held up by an etcd outage.
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	if err := s.release(dctx, handle, w); err != nil {
		return err
	}
	delete(c.vanished, name)
	s.m.gcReleased.WithLabelValues("endpoint").Inc()
	c.log.Info("released an endpoint: "+why, "endpoint", name, "hostIf", w.Spec.InterfaceName, "ips", w.Spec.IPNetworks, "missingFor", ">= "+c.grace.String())
	return nil
}

// collectHandles releases this node's CNI handles that no endpoint has

// collectHandles releases this node's CNI handles that no endpoint has
// held for the grace period. Only every borrowedScanEvery-th scan reads the
// blocks of other nodes; the allocations it found there stay candidates in
// between, and are released only by a full scan, which has read them again.
func (c *collector) collectHandles(ctx context.Context, now time.Time) error {
	s := c.s
	full := c.scans%borrowedScanEvery == 0
	c.scans++
	allocs, err := s.alloc.NodeAllocations(ctx, s.node, full)
	if err != nil {
		return fmt.Errorf("listing this node's IPAM allocations: %w", err)
	}
	if full {
		c.borrowed = slices.DeleteFunc(slices.Clone(allocs), func(a ipam.Allocation) bool { return !a.Borrowed })
	} else {
		seen := map[netip.Addr]bool{}
		for _, a := range allocs {
			seen[a.IP] = true
		}
		for _, a := range c.borrowed {
			if !seen[a.IP] {
				allocs = append(allocs, a)
			}
		}
	}
	leaked := s.leakedHandles(allocs)
	var candidates []string
	for handle, as := range leaked {
		// calyx-ipam's allocations under other plugins are for their DEL
		// or a CNI GC; tunnel addresses and other non-CNI handles have no
		// container.
		at := as[0].Attrs
		if at[ipam.AttrIPAMOnly] == "true" || at["containerID"] == "" && at["orchestrator"] != api.OrchestratorDocker {
			continue
		}
		candidates = append(candidates, handle)
	}
	var errs []error
	for _, handle := range sweep(c.leaked, candidates, now, c.grace) {
		if !full && slices.ContainsFunc(leaked[handle], func(a ipam.Allocation) bool { return a.Borrowed }) {
			continue // not read again since the last full scan
		}
		released, err := s.releaseLeaked(ctx, handle)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if released {
			delete(c.leaked, handle)
			c.borrowed = slices.DeleteFunc(c.borrowed, func(a ipam.Allocation) bool { return a.Handle == handle })
			s.m.gcReleased.WithLabelValues("handle").Inc()
			c.log.Info("released an IPAM handle no endpoint held", "handle", handle, "unheldFor", ">= "+c.grace.String())
		}
	}
	return errors.Join(errs...)
}

// leakedHandles groups allocs (this node's) by handle and returns the
// handles that no local endpoint holds, by handle or by address, leaving
// out attachments in flight and allocations without a handle. Which
// endpoints exist comes from the view of this node's own endpoints, never
// from a cluster-wide list.
func (s *service) leakedHandles(allocs []ipam.Allocation) map[string][]ipam.Allocation {
	heldHandles := map[string]bool{}
	heldIPs := map[netip.Addr]bool{}
	for _, w := range s.view.endpoints() {
		if h := w.Metadata.Annotations[AnnotationHandle]; h != "" {
			heldHandles[h] = true
		}
		for _, n := range w.Spec.IPNetworks {
			if p, err := netip.ParsePrefix(n); err == nil {
				heldIPs[p.Addr().Unmap()] = true
			} else if ip, err := netip.ParseAddr(n); err == nil {
				heldIPs[ip.Unmap()] = true
			}
		}
	}
	out := map[string][]ipam.Allocation{}
	for _, a := range allocs {
		if heldIPs[a.IP] {
			heldHandles[a.Handle] = true
		}
		if a.Handle != "" {
			out[a.Handle] = append(out[a.Handle], a)
		}
	}
	maps.DeleteFunc(out, func(h string, _ []ipam.Allocation) bool { return heldHandles[h] || s.locks.busy(h) })
	return out
}

// releaseLeaked releases a handle under its lock if still no local
// endpoint holds it.
func (s *service) releaseLeaked(ctx context.Context, handle string) (bool, error) {
	if err := s.checkClaimBounded(ctx); err != nil {
		return false, fmt.Errorf("not releasing handle %s: %w", handle, err)
	}
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return false, err
	}
	defer unlock()
	for _, w := range s.view.endpoints() {
		if belongs(w, handle) {
			return false, nil
		}
	}
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	if err := s.alloc.ReleaseByHandle(dctx, handle); err != nil {
		return false, fmt.Errorf("releasing handle %s: %w", handle, err)
	}
	return true, nil
}

// gc serves a CNI GC: every attachment of the network on this node that is
// not in the valid list is released, endpoint and addresses (also the
// addresses calyx-ipam handed out under another plugin). It continues past
// errors and reports them all at the end.
func (s *service) gc(ctx context.Context, req localapi.GCRequest) (localapi.GCResponse, error) {
	if req.Network == "" {
		return localapi.GCResponse{}, badRequestf("no network name given")
	}
	if err := s.checkClaimBounded(ctx); err != nil {
		return localapi.GCResponse{}, err
	}
	valid := map[localapi.Attachment]bool{}
	for _, a := range req.Valid {
		if a.Network == "" {
			a.Network = req.Network
		}
		valid[a] = true
	}
	var resp localapi.GCResponse
	var errs []error
	done := map[string]bool{}
	label := networkLabelValue(req.Network)
	for _, w := range s.view.endpoints() {
		handle := w.Metadata.Annotations[AnnotationHandle]
		a := localapi.Attachment{Network: req.Network, ContainerID: w.Spec.ContainerID, IfName: w.Spec.Endpoint}
		if w.Metadata.Labels[LabelNetwork] != label || handle == "" || valid[a] {
			continue
		}
		if err := s.gcOne(ctx, handle, w); err != nil {
			errs = append(errs, err)
			continue
		}
		done[handle] = true
		resp.Released = append(resp.Released, a)
	}
	// A GC is explicit and rare: read every block, borrowed ones too.
	lctx, cancel := s.datastoreContext(ctx)
	allocs, err := s.alloc.NodeAllocations(lctx, s.node, true)
	if err != nil {
		errs = append(errs, fmt.Errorf("listing this node's IPAM allocations: %w", s.outageError(lctx, err)))
	}
	cancel()
	leaked := s.leakedHandles(allocs)
	for _, handle := range slices.Sorted(maps.Keys(leaked)) {
		if done[handle] {
			continue
		}
		at := leaked[handle][0].Attrs
		a := localapi.Attachment{Network: at["network"], ContainerID: at["containerID"], IfName: at["ifname"]}
		if a.Network != req.Network || a.ContainerID == "" || valid[a] {
			continue
		}
		if err := s.gcOne(ctx, handle, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Released = append(resp.Released, a)
	}
	if len(resp.Released) > 0 {
		s.log.Info("CNI GC released stale attachments", "network", req.Network, "released", len(resp.Released))
	}
	return resp, errors.Join(errs...)
}

// gcOne releases one attachment for CNI GC under its handle's lock. A CNI
// GC may release many attachments, so it is not bounded as a whole; each
// attachment, its wait for the lock included, is bounded like a request,
// so that a DEL or ADD of it waits no longer than that.
func (s *service) gcOne(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	unlock, err := s.locks.lock(dctx, handle)
	if err != nil {
		return fmt.Errorf("waiting for other work on attachment %s: %w", handle, s.outageError(dctx, err))
	}
	defer unlock()
	if err := s.release(dctx, handle, w); err != nil {
		return s.outageError(dctx, err)
	}
	return nil
}

// checkClaimBounded is checkClaim bounded by the datastore timeout: the
// claim's Get otherwise waits for as long as etcd is unreachable.
func (s *service) checkClaimBounded(ctx context.Context) error {
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	return s.outageError(dctx, s.checkClaim(dctx))
}
