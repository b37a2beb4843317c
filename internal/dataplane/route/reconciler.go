package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultGrace is how long an owned route or neighbour nobody desires is
// kept before Prune removes it, as Felix's 10 s: a CNI ADD programs its
// endpoint before the datastore event that makes it desired reaches a
// resync.
const DefaultGrace = 10 * time.Second

// Option configures a Reconciler.
type Option func(*Reconciler)

// WithGrace sets Prune's grace period (default DefaultGrace).
func WithGrace(d time.Duration) Option { return func(r *Reconciler) { r.grace = d } }

// Reconciler makes the kernel hold the host side of workload endpoints.
// It is safe for concurrent use; calls are serialised.
type Reconciler struct {
	k     Kernel
	log   *slog.Logger
	grace time.Duration

	mu sync.Mutex // guards the following fields, the cache of kernel state
	// links are the links the reconciler has state on: every
	// InterfacePrefix link seen by Resync plus any link Update touched.
	links map[string]*linkState
	names map[int]string // link index -> name, for the links above
	// routes are main-table routes on known links, by destination. Owned
	// routes elsewhere (to other hosts, blackholes) are Remote's.
	routes map[netip.Prefix]Route
	// neighs are permanent neighbour entries on known links.
	neighs map[neighKey]Neigh
	// global holds namespace-wide sysctls read or written.
	global map[string]string
	// unwanted holds owned objects Prune found undesired, by their golden
	// text, with when it first did.
	unwanted map[string]time.Time
	writes   uint64
}

// linkState is what the reconciler knows of one link. Every endpoint has
// one for the life of its veth, so its sysctls are kept by their index in
// ifaceSettings, not by key: the keys are made again when needed.
type linkState struct {
	link Link
	// vals are the per-interface sysctls' values read or written, by
	// index in ifaceSettings; known says which it holds.
	vals  [len(ifaceSettings)]string
	known keyMask
	// wanted are the per-interface keys the last Update wanted (wantedSet:
	// there was one): a Resync re-reads only those of a link it knows
	// (same name and index), all Calyx may set of one it does not.
	wanted    keyMask
	wantedSet bool
	// fresh says the link appeared since the last Resync, so its
	// per-interface sysctls were never read: they are written without
	// reading them first (a new veth has the kernel's defaults, none of
	// which is what Calyx wants, so reading would only cost time).
	fresh bool
}

func (ls *linkState) get(i int) (string, bool) { return ls.vals[i], ls.known.has(i) }

func (ls *linkState) set(i int, v string) { ls.vals[i], ls.known = v, ls.known|1<<i }

func (ls *linkState) forget(i int) { ls.vals[i], ls.known = "", ls.known&^(1<<i) }

// New returns a reconciler over k. Call Resync before the first Update so
// that state left by an earlier run is known.
func New(k Kernel, log *slog.Logger, opts ...Option) *Reconciler {
	r := &Reconciler{
		k: k, log: log, grace: DefaultGrace,
		links: map[string]*linkState{}, names: map[int]string{}, routes: map[netip.Prefix]Route{}, neighs: map[neighKey]Neigh{},
		global: map[string]string{}, unwanted: map[string]time.Time{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Writes returns how many kernel writes the reconciler has made.
func (r *Reconciler) Writes() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// Resync re-reads the kernel's links, routes, neighbours and the sysctls
// Calyx sets, replacing the cache. It writes nothing, and reads without
// holding the lock, so a READY is not held up by a resync of a busy host.
func (r *Reconciler) Resync(_ context.Context) error {
	st, err := r.k.Dump()
	if err != nil {
		return fmt.Errorf("resyncing routes: %w", err)
	}
	r.mu.Lock()
	known := make(map[string]knownLink, len(r.links))
	for name, ls := range r.links {
		known[name] = knownLink{index: ls.link.Index, wanted: ls.wanted, wantedSet: ls.wantedSet}
	}
	r.mu.Unlock()
	links := map[string]*linkState{}
	names := map[int]string{}
	keys := []string{keyIPv4Forward, keyIPv6Forward}
	type slot struct {
		ls *linkState
		i  int // in ifaceSettings
	}
	owner := map[string]slot{} // per-interface sysctl key -> its link and index
	for _, l := range st.Links {
		k, ok := known[l.Name]
		if !ok && !strings.HasPrefix(l.Name, InterfacePrefix) {
			continue
		}
		ls := &linkState{link: l}
		links[l.Name] = ls
		names[l.Index] = l.Name
		read := allIfaceKeys
		if k.wantedSet && k.index == l.Index {
			ls.wanted, ls.wantedSet = k.wanted, true
			read = k.wanted
		}
		for i := range ifaceSettings {
			if read.has(i) {
				key := ifaceKey(i, l.Name)
				keys = append(keys, key)
				owner[key] = slot{ls, i}
			}
		}
	}
	vals, err := r.k.ReadSysctls(keys)
	if err != nil {
		return fmt.Errorf("resyncing routes: %w", err)
	}
	global := map[string]string{}
	for k, v := range vals {
		if o, ok := owner[k]; ok {
			o.ls.set(o.i, v)
		} else {
			global[k] = v
		}
	}
	// Only routes on the links above: every other route, owned ones
	// included, is Remote's or someone else's.
	routes := map[netip.Prefix]Route{}
	for _, rt := range st.Routes {
		if _, ok := names[rt.LinkIndex]; ok && rt.LinkIndex != 0 {
			routes[rt.Dst] = rt
		}
	}
	neighs := map[neighKey]Neigh{}
	for _, n := range st.Neighs {
		if _, ok := names[n.LinkIndex]; ok && n.Permanent {
			neighs[neighKey{n.IP, n.LinkIndex}] = n
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.links, r.names, r.routes, r.neighs, r.global = links, names, routes, neighs, global
	return nil
}

// knownLink is what Resync carries over from the links the reconciler
// knew.
type knownLink struct {
	index     int
	wanted    keyMask
	wantedSet bool
}

// Update makes the kernel hold ep's host side: sysctls, the veth up, its
// routes and (when ep.MAC is known) its neighbour entries. It writes only
// what differs from what the kernel holds. A missing veth is an error
// satisfying IsLinkNotFound.
func (r *Reconciler) Update(_ context.Context, ep Endpoint) error {
	l, err := r.k.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("programming endpoint %s: %w", ep.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := r.linkLocked(l)
	var errs []error
	if err := r.sysctlsLocked(ls, ep); err != nil {
		errs = append(errs, err)
	}
	if !l.Up {
		if err := r.k.SetLinkUp(l); err != nil {
			errs = append(errs, fmt.Errorf("setting %s up: %w", l.Name, err))
		} else {
			r.writes++
			ls.link.Up = true
		}
	}
	for _, want := range routesFor(ep, l.Index) {
		if cur, ok := r.routes[want.Dst]; ok && cur == want {
			continue
		}
		if err := r.k.ReplaceRoute(want); err != nil {
			errs = append(errs, fmt.Errorf("adding route %s: %w", r.routeTextLocked(want), err))
			continue
		}
		r.writes++
		r.routes[want.Dst] = want
	}
	for _, want := range neighsFor(ep, l.Index) {
		k := neighKey{want.IP, want.LinkIndex}
		if cur, ok := r.neighs[k]; ok && cur == want {
			continue
		}
		if err := r.k.SetNeigh(want); err != nil {
			errs = append(errs, fmt.Errorf("adding neighbour %s: %w", r.neighTextLocked(want), err))
			continue
		}
		r.writes++
		r.neighs[k] = want
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("programming endpoint %s: %w", ep.Name, err)
	}
	return nil
}

// linkLocked returns the state of l, starting afresh when the link is new
// or was re-created under the same name (a new index): whatever the cache
// held for the old one went with it.
func (r *Reconciler) linkLocked(l Link) *linkState {
	ls := r.links[l.Name]
	if ls != nil && ls.link.Index == l.Index {
		ls.link = l
		return ls
	}
	if ls != nil {
		r.forgetLocked(ls.link)
	}
	ls = &linkState{link: l, fresh: true}
	r.links[l.Name] = ls
	r.names[l.Index] = l.Name
	return ls
}

// forgetLocked drops what the cache holds on a link that is gone.
func (r *Reconciler) forgetLocked(l Link) {
	if cur := r.links[l.Name]; cur != nil && cur.link.Index == l.Index {
		delete(r.links, l.Name)
	}
	if r.names[l.Index] == l.Name {
		delete(r.names, l.Index)
	}
	maps.DeleteFunc(r.routes, func(_ netip.Prefix, rt Route) bool { return rt.LinkIndex == l.Index })
	maps.DeleteFunc(r.neighs, func(k neighKey, _ Neigh) bool { return k.idx == l.Index })
}

// sysctlsLocked writes the endpoint's global and per-interface sysctls
// that differ from the kernel's values, reading those it does not know
// first (in one batch; not the per-interface ones of a fresh link), and
// writing in one batch.
func (r *Reconciler) sysctlsLocked(ls *linkState, ep Endpoint) error {
	mask := ifaceMask(ep)
	if mask != 0 || ls.wantedSet {
		// (an endpoint without addresses leaves a link whose keys were
		// never wanted to be read whole at the next Resync)
		ls.wanted, ls.wantedSet = mask, true
	}
	// want are the global settings (i < 0), then the link's.
	type setting struct {
		Sysctl
		i int // in ifaceSettings; -1 for a global one
	}
	var want []setting
	for _, s := range globalSysctls(ep) {
		want = append(want, setting{s, -1})
	}
	for i := range ifaceSettings {
		if mask.has(i) {
			want = append(want, setting{Sysctl{Key: ifaceKey(i, ep.IfName), Value: ifaceSettings[i].value}, i})
		}
	}
	known := func(s setting) (string, bool) {
		if s.i < 0 {
			v, ok := r.global[s.Key]
			return v, ok
		}
		return ls.get(s.i)
	}
	record := func(s setting, v string) {
		if s.i < 0 {
			r.global[s.Key] = v
		} else {
			ls.set(s.i, v)
		}
	}
	var unknown []string
	for _, s := range want {
		if _, ok := known(s); !ok && (s.i < 0 || !ls.fresh) {
			unknown = append(unknown, s.Key)
		}
	}
	if len(unknown) > 0 {
		vals, err := r.k.ReadSysctls(unknown)
		if err != nil {
			return err
		}
		for _, s := range want {
			if v, ok := vals[s.Key]; ok {
				record(s, v)
			}
		}
	}
	var diff []Sysctl
	var changed []setting
	for _, s := range want {
		if v, ok := known(s); !ok || v != s.Value {
			diff = append(diff, s.Sysctl)
			changed = append(changed, s)
		}
	}
	if len(diff) == 0 {
		return nil
	}
	err := r.k.WriteSysctls(diff)
	r.writes += uint64(len(diff))
	if err != nil {
		// Some may have been written: read them again next time.
		for _, s := range changed {
			if s.i < 0 {
				delete(r.global, s.Key)
			} else {
				ls.forget(s.i)
			}
		}
		return err
	}
	for _, s := range changed {
		record(s, s.Value)
	}
	return nil
}

// Delete removes ep's host side: the veth, which takes its routes,
// neighbour entries and peer with it. A veth that is already gone is not
// an error.
func (r *Reconciler) Delete(_ context.Context, ep Endpoint) error {
	l, err := r.k.LinkByName(ep.IfName)
	r.mu.Lock()
	defer r.mu.Unlock()
	if gone, err := r.goneLocked(ep, err, "deleting"); gone || err != nil {
		return err
	}
	if err := r.k.DeleteLink(l); err != nil && !IsLinkNotFound(err) {
		return fmt.Errorf("deleting endpoint %s: deleting %s: %w", ep.Name, l.Name, err)
	}
	r.writes++
	r.forgetLocked(l)
	return nil
}

// goneLocked handles the lookup of ep's link for Delete and Unroute
// (doing, for the error): a link already gone is forgotten and reported
// gone, another failure returned.
func (r *Reconciler) goneLocked(ep Endpoint, lookupErr error, doing string) (bool, error) {
	switch {
	case IsLinkNotFound(lookupErr):
		if ls := r.links[ep.IfName]; ls != nil {
			r.forgetLocked(ls.link)
		}
		return true, nil
	case lookupErr != nil:
		return false, fmt.Errorf("%s endpoint %s: %w", doing, ep.Name, lookupErr)
	}
	return false, nil
}

// Unroute removes the routes the reconciler programmed on the endpoint's
// link and forgets the link, leaving the link itself to whoever deletes it
// (calyx-node's reaper after the DEL has answered, or an older CNI plugin
// deleting the container end at the same time), so that a DEL does not
// wait for the kernel's slow link deletion. A link already gone is fine.
func (r *Reconciler) Unroute(_ context.Context, ep Endpoint) error {
	l, err := r.k.LinkByName(ep.IfName)
	r.mu.Lock()
	defer r.mu.Unlock()
	if gone, err := r.goneLocked(ep, err, "unrouting"); gone || err != nil {
		return err
	}
	var errs []error
	for _, rt := range r.routes {
		if rt.LinkIndex != l.Index {
			continue
		}
		if err := r.k.DeleteRoute(rt); err != nil {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", r.routeTextLocked(rt), err))
		}
		r.writes++
	}
	if len(errs) > 0 {
		if _, lerr := r.k.LinkByName(ep.IfName); !IsLinkNotFound(lerr) {
			return fmt.Errorf("unrouting endpoint %s: %w", ep.Name, errors.Join(errs...))
		}
		// The link went meanwhile, and its routes with it.
	}
	r.forgetLocked(l)
	return nil
}

// LinkNames returns the names of every interface, in one dump: for
// checking many endpoints' links at once.
func (r *Reconciler) LinkNames(_ context.Context) (map[string]bool, error) { return r.k.LinkNames() }

// HasLink reports whether the named interface exists.
func (r *Reconciler) HasLink(_ context.Context, name string) (bool, error) {
	_, err := r.k.LinkByName(name)
	switch {
	case IsLinkNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking up %s: %w", name, err)
	}
	return true, nil
}

// Prune removes owned routes and neighbour entries on InterfacePrefix
// links that no endpoint in desired wants, once Prune has seen them
// unwanted for the grace period (time is an input: now). It acts on the
// cache, which Resync refreshes.
func (r *Reconciler) Prune(_ context.Context, desired []Endpoint, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	wantRoutes := map[Route]bool{}
	wantNeighs := map[Neigh]bool{}
	for _, ep := range desired {
		ls := r.links[ep.IfName]
		if ls == nil {
			continue
		}
		for _, rt := range routesFor(ep, ls.link.Index) {
			wantRoutes[rt] = true
		}
		for _, n := range neighsFor(ep, ls.link.Index) {
			wantNeighs[n] = true
		}
	}
	seen := map[string]bool{}
	var errs []error
	for _, rt := range slices.SortedFunc(maps.Values(r.routes), compareRoutes) {
		if rt.Protocol != Protocol || !r.ownedIndexLocked(rt.LinkIndex) || wantRoutes[rt] {
			continue
		}
		text := r.routeTextLocked(rt)
		seen[text] = true
		if !r.expiredLocked(text, now) {
			continue
		}
		if err := r.k.DeleteRoute(rt); err != nil {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", text, err))
			continue
		}
		r.writes++
		r.log.Info("removed an unwanted route", "route", text)
		delete(r.routes, rt.Dst)
		delete(r.unwanted, text)
	}
	for _, n := range slices.SortedFunc(maps.Values(r.neighs), compareNeighs) {
		if !n.Permanent || !r.ownedIndexLocked(n.LinkIndex) || wantNeighs[n] {
			continue
		}
		text := r.neighTextLocked(n)
		seen[text] = true
		if !r.expiredLocked(text, now) {
			continue
		}
		if err := r.k.DeleteNeigh(n); err != nil {
			errs = append(errs, fmt.Errorf("deleting neighbour %s: %w", text, err))
			continue
		}
		r.writes++
		r.log.Info("removed an unwanted neighbour entry", "neighbour", text)
		delete(r.neighs, neighKey{n.IP, n.LinkIndex})
		delete(r.unwanted, text)
	}
	maps.DeleteFunc(r.unwanted, func(k string, _ time.Time) bool { return !seen[k] })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pruning routes: %w", err)
	}
	return nil
}

// NextPrune returns when the earliest unwanted object's grace period ends,
// so that a caller can prune then rather than at the next resync.
func (r *Reconciler) NextPrune() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return pruneDue(r.unwanted, r.grace)
}

// pruneDue returns when the earliest of the unwanted objects' grace
// periods ends; false when there is none.
func pruneDue[K comparable](unwanted map[K]time.Time, grace time.Duration) (time.Time, bool) {
	var next time.Time
	for _, t := range unwanted {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if next.IsZero() {
		return time.Time{}, false
	}
	return next.Add(grace), true
}

// expiredLocked records text as unwanted at now if it was not yet, and
// reports whether it has been unwanted for the grace period.
func (r *Reconciler) expiredLocked(text string, now time.Time) bool {
	first, ok := r.unwanted[text]
	if !ok {
		r.unwanted[text] = now
		first = now
	}
	return now.Sub(first) >= r.grace
}

// ownedIndexLocked reports whether the link with index idx is a Calyx
// interface.
func (r *Reconciler) ownedIndexLocked(idx int) bool {
	name := r.nameLocked(idx)
	return strings.HasPrefix(name, InterfacePrefix)
}

func (r *Reconciler) nameLocked(idx int) string { return r.names[idx] }

func (r *Reconciler) routeTextLocked(rt Route) string {
	return RouteText(rt, r.nameLocked(rt.LinkIndex))
}
func (r *Reconciler) neighTextLocked(n Neigh) string { return NeighText(n, r.nameLocked(n.LinkIndex)) }

func compareRoutes(a, b Route) int { return comparePrefix(a.Dst, b.Dst) }
func compareNeighs(a, b Neigh) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return a.LinkIndex - b.LinkIndex
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
