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
// before anything is released.

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
	scanEvery time.Duration // between IPAM handle scans (each reads every block)
	vanished  map[string]time.Time
	leaked    map[string]time.Time
	ignored   map[string]bool // leaked handles that are not CNI attachments'
	lastScan  time.Time
}

func newCollector(s *service, log *slog.Logger, grace, interval time.Duration) *collector {
	return &collector{
		s: s, log: log, grace: grace, scanEvery: max(grace, interval),
		vanished: map[string]time.Time{}, leaked: map[string]time.Time{}, ignored: map[string]bool{},
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

// pass is one round of collection at now.
func (c *collector) pass(ctx context.Context, now time.Time) {
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
	var missing []string
	for _, w := range s.view.endpoints() {
		handle := w.Metadata.Annotations[AnnotationHandle]
		if handle == "" || w.Spec.InterfaceName == "" || s.locks.busy(handle) {
			continue
		}
		ok, err := s.host.HasLink(ctx, w.Spec.InterfaceName)
		if err != nil {
			c.log.Warn("checking an endpoint's host interface", "endpoint", w.Metadata.Name, "err", err)
			continue
		}
		if !ok {
			missing = append(missing, w.Metadata.Name)
		}
	}
	for _, name := range sweep(c.vanished, missing, now, c.grace) {
		if err := c.collectEndpoint(ctx, name); err != nil && ctx.Err() == nil {
			c.log.Warn("collecting an endpoint whose veth vanished", "endpoint", name, "err", err)
		}
	}
}

func (c *collector) collectEndpoint(ctx context.Context, name string) error {
	s := c.s
	w := s.view.endpoint(name)
	if w == nil {
		return nil
	}
	handle := w.Metadata.Annotations[AnnotationHandle]
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
	if ok, err := s.host.HasLink(ctx, w.Spec.InterfaceName); ok || err != nil {
		return err
	}
	if err := s.release(ctx, handle, w); err != nil {
		return err
	}
	delete(c.vanished, name)
	s.m.gcReleased.WithLabelValues("endpoint").Inc()
	c.log.Info("released an endpoint whose host veth vanished", "endpoint", name, "hostIf", w.Spec.InterfaceName, "ips", w.Spec.IPNetworks, "missingFor", ">= "+c.grace.String())
	return nil
}

// collectHandles releases this node's CNI handles that no endpoint has
// held for the grace period.
func (c *collector) collectHandles(ctx context.Context, now time.Time) error {
	s := c.s
	leaked, err := s.leakedHandles(ctx)
	if err != nil {
		return err
	}
	var candidates []string
	for handle, ip := range leaked {
		if c.ignored[handle] {
			continue
		}
		if _, seen := c.leaked[handle]; !seen {
			as, err := s.alloc.GetAssignment(ctx, ip)
			if err != nil {
				c.log.Warn("reading the owner of a leaked address", "ip", ip, "err", err)
				continue
			}
			if as.Handle != handle || as.Attrs[ipam.AttrIPAMOnly] == "true" || as.Attrs["containerID"] == "" {
				c.ignored[handle] = true
				continue
			}
		}
		candidates = append(candidates, handle)
	}
	maps.DeleteFunc(c.ignored, func(h string, _ bool) bool { _, still := leaked[h]; return !still })
	var errs []error
	for _, handle := range sweep(c.leaked, candidates, now, c.grace) {
		released, err := s.releaseLeaked(ctx, handle)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if released {
			delete(c.leaked, handle)
			s.m.gcReleased.WithLabelValues("handle").Inc()
			c.log.Info("released an IPAM handle no endpoint held", "handle", handle, "unheldFor", ">= "+c.grace.String())
		}
	}
	return errors.Join(errs...)
}

// leakedHandles returns this node's handles whose addresses no endpoint
// uses (calyx-ipam's allocations under other plugins included: CNI GC
// releases those; the background collector skips them), with one of their
// addresses, leaving out attachments in flight
// and handles a local endpoint names.
func (s *service) leakedHandles(ctx context.Context) (map[string]netip.Addr, error) {
	report, err := s.alloc.Check(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking IPAM: %w", err)
	}
	held := map[string]bool{}
	for _, w := range s.view.endpoints() {
		held[w.Metadata.Annotations[AnnotationHandle]] = true
	}
	out := map[string]netip.Addr{}
	for _, l := range slices.Concat(report.Leaked, report.PluginHeld) {
		if l.Node != s.node || l.Handle == "" || held[l.Handle] || s.locks.busy(l.Handle) {
			continue
		}
		out[l.Handle] = l.IP
	}
	return out, nil
}

// releaseLeaked releases a handle under its lock if still no local
// endpoint holds it.
func (s *service) releaseLeaked(ctx context.Context, handle string) (bool, error) {
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
	if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil {
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
	leaked, err := s.leakedHandles(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, handle := range slices.Sorted(maps.Keys(leaked)) {
		if done[handle] {
			continue
		}
		as, err := s.alloc.GetAssignment(ctx, leaked[handle])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a := localapi.Attachment{Network: as.Attrs["network"], ContainerID: as.Attrs["containerID"], IfName: as.Attrs["ifname"]}
		if as.Handle != handle || a.Network != req.Network || a.ContainerID == "" || valid[a] {
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

// gcOne releases one attachment for CNI GC under its handle's lock.
func (s *service) gcOne(ctx context.Context, handle string, w *api.WorkloadEndpoint) error {
	unlock, err := s.locks.lock(ctx, handle)
	if err != nil {
		return err
	}
	defer unlock()
	return s.release(ctx, handle, w)
}
