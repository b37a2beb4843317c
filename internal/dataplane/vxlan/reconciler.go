package vxlan

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
)

// Reconciler makes the kernel hold a Desired VXLAN state. It is safe for
// concurrent use; calls are serialised.
type Reconciler struct {
	k   Kernel
	log *slog.Logger

	mu sync.Mutex // guards the following fields, the cache of kernel state
	// devs is what the kernel holds for each owned device, by name. A name
	// that is absent was not read yet (or its entry was dropped after a
	// failed write, so that it is read again); a nil value means the
	// device does not exist.
	devs   map[string]*devState
	writes uint64
}

// devState is what the reconciler knows of one of its devices.
type devState struct {
	link   Link
	addrs  map[netip.Prefix]bool
	neighs map[netip.Addr]Neigh // permanent entries only
	fdb    map[fdbKey]FDB       // permanent entries only
}

// fdbKey identifies an FDB entry of a device: a MAC may have several
// remotes (`bridge fdb append`), each its own entry.
type fdbKey struct {
	mac string
	dst netip.Addr
}

// owned lists the devices of the package, with their family.
var owned = [...]struct {
	name string
	v6   bool
}{{DeviceV4, false}, {DeviceV6, true}}

// New returns a reconciler over k that logs to log (nil: nowhere). Call
// Resync before the first Apply to read what an earlier run left; Apply
// reads a device it knows nothing of itself.
func New(k Kernel, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{k: k, log: log, devs: map[string]*devState{}}
}

// Writes returns how many kernel writes the reconciler has made.
func (r *Reconciler) Writes() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// Resync re-reads the owned devices, their addresses, permanent neighbour
// and FDB entries, replacing the cache. It writes nothing. A device that
// cannot be read is dropped from the cache, so Apply reads it again.
func (r *Reconciler) Resync(ctx context.Context) error {
	var errs []error
	read := map[string]*devState{}
	for _, o := range owned {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("resyncing vxlan devices: %w", err)
		}
		ds, err := r.read(o.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		read[o.name] = ds
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range owned {
		if ds, ok := read[o.name]; ok {
			r.devs[o.name] = ds
		} else {
			delete(r.devs, o.name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("resyncing vxlan devices: %w", err)
	}
	return nil
}

// read reads the named device; nil when it does not exist.
func (r *Reconciler) read(name string) (*devState, error) {
	l, err := r.k.LinkByName(name)
	switch {
	case IsLinkNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	st, err := r.k.ReadLink(l)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	ds := newDevState(l)
	for _, p := range st.Addrs {
		ds.addrs[p] = true
	}
	for _, n := range st.Neighs {
		if n.LinkIndex == l.Index && n.Permanent {
			ds.neighs[n.IP] = n
		}
	}
	for _, e := range st.FDB {
		if e.LinkIndex == l.Index && e.Permanent {
			ds.fdb[fdbKey{e.MAC, e.Dst}] = e
		}
	}
	return ds, nil
}

func newDevState(l Link) *devState {
	return &devState{link: l, addrs: map[netip.Prefix]bool{}, neighs: map[netip.Addr]Neigh{}, fdb: map[fdbKey]FDB{}}
}

// Apply makes the kernel hold desired, writing only what differs from the
// cache: it creates a missing device, re-creates one whose VNI, port,
// local address, parent or learning differ (the kernel cannot change them
// in place), sets MTU and MAC in place, brings it up, ensures its tunnel
// address (removing any other, except IPv6 link-local ones), removes the
// entries of peers no longer desired and adds or replaces those of the
// desired ones. A nil device in desired is removed. An error for one
// device or peer does not stop the others; the errors are joined.
func (r *Reconciler) Apply(ctx context.Context, desired Desired) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, o := range owned {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("programming %s: %w", o.name, err))
			break
		}
		want := desired.V4
		if o.v6 {
			want = desired.V6
		}
		if err := r.applyLocked(o.name, o.v6, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyLocked programs one device.
func (r *Reconciler) applyLocked(name string, v6 bool, want *Overlay) error {
	ds, known := r.devs[name]
	if !known {
		var err error
		if ds, err = r.read(name); err != nil {
			return fmt.Errorf("programming %s: %w", name, err)
		}
		r.devs[name] = ds
	}
	if want == nil {
		if ds == nil {
			return nil
		}
		if err := r.removeLocked(name, ds); err != nil {
			return fmt.Errorf("removing %s: %w", name, err)
		}
		return nil
	}
	dev := want.Device.withDefaults()
	if err := dev.validate(v6); err != nil {
		return fmt.Errorf("programming %s: invalid device: %w", name, err)
	}
	wantLink := Link{
		Name: name, Kind: KindVXLAN, VNI: dev.VNI, Port: dev.Port, Local: dev.Local, Parent: dev.Parent,
		MTU: dev.MTU, MAC: dev.MAC.String(), Up: true,
	}
	if ds != nil && !sameFixed(ds.link, wantLink) {
		r.log.Info("re-creating the vxlan device: attributes differ that cannot change in place",
			"device", name, "have", LinkText(ds.link), "want", LinkText(wantLink))
		if err := r.removeLocked(name, ds); err != nil {
			return fmt.Errorf("re-creating %s: %w", name, err)
		}
		ds = nil
	}
	if ds == nil {
		l, err := r.k.AddLink(wantLink)
		if err != nil {
			delete(r.devs, name) // it may exist in part: read it again
			return fmt.Errorf("creating %s: %w", name, err)
		}
		r.writes++
		r.log.Info("created the vxlan device", "device", LinkText(l))
		ds = newDevState(l)
		r.devs[name] = ds
	}
	var kernelErrs, errs []error
	kernelErrs = append(kernelErrs, r.linkAttrsLocked(ds, wantLink)...)
	kernelErrs = append(kernelErrs, r.addrsLocked(ds, dev.Addr)...)
	neighs, fdb, perr := wantEntries(ds.link.Index, dev, v6, want.Peers)
	errs = append(errs, perr...)
	kernelErrs = append(kernelErrs, r.entriesLocked(ds, neighs, fdb)...)
	if len(kernelErrs) > 0 {
		// What failed may have been done in part, or the device may have
		// gone: read it again before the next write.
		delete(r.devs, name)
	}
	if err := errors.Join(append(errs, kernelErrs...)...); err != nil {
		return fmt.Errorf("programming %s: %w", name, err)
	}
	return nil
}

// sameFixed reports whether the existing link has the attributes of want
// that cannot change in place: a VXLAN device with want's VNI, port,
// local address and parent, and learning off.
func sameFixed(have, want Link) bool {
	return have.Kind == KindVXLAN && have.VNI == want.VNI && have.Port == want.Port &&
		have.Local == want.Local && have.Parent == want.Parent && have.Learning == want.Learning
}

// removeLocked deletes the device; one already gone is not an error.
func (r *Reconciler) removeLocked(name string, ds *devState) error {
	if err := r.k.DeleteLink(ds.link); err != nil && !IsLinkNotFound(err) {
		delete(r.devs, name)
		return err
	}
	r.writes++
	r.devs[name] = nil
	r.log.Info("removed the vxlan device", "device", name)
	return nil
}

// linkAttrsLocked sets MTU and MAC in place and brings the link up.
func (r *Reconciler) linkAttrsLocked(ds *devState, want Link) []error {
	var errs []error
	l := ds.link
	if l.MTU != want.MTU {
		if err := r.k.SetLinkMTU(l, want.MTU); err != nil {
			errs = append(errs, fmt.Errorf("setting MTU %d: %w", want.MTU, err))
		} else {
			r.writes++
			ds.link.MTU = want.MTU
		}
	}
	if !strings.EqualFold(l.MAC, want.MAC) {
		if err := r.k.SetLinkMAC(l, want.MAC); err != nil {
			errs = append(errs, fmt.Errorf("setting MAC %s: %w", want.MAC, err))
		} else {
			r.writes++
			ds.link.MAC = want.MAC
		}
	}
	if !l.Up {
		if err := r.k.SetLinkUp(l); err != nil {
			errs = append(errs, fmt.Errorf("setting up: %w", err))
		} else {
			r.writes++
			ds.link.Up = true
		}
	}
	return errs
}

// addrsLocked ensures the tunnel address and removes any other, except
// IPv6 link-local addresses (the kernel's, needed by IPv6 on any link).
func (r *Reconciler) addrsLocked(ds *devState, want netip.Prefix) []error {
	var errs []error
	l := ds.link
	if !ds.addrs[want] {
		if err := r.k.AddAddr(l, want); err != nil {
			errs = append(errs, fmt.Errorf("adding address %s: %w", want, err))
		} else {
			r.writes++
			ds.addrs[want] = true
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(ds.addrs), comparePrefix) {
		if p == want || p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if err := r.k.DeleteAddr(l, p); err != nil {
			errs = append(errs, fmt.Errorf("removing address %s: %w", p, err))
			continue
		}
		r.writes++
		r.log.Info("removed an address from the vxlan device", "address", AddrText(p, l.Name))
		delete(ds.addrs, p)
	}
	return errs
}

// peerEntry is a desired entry with the peer it is for, for errors.
type peerEntry[T any] struct {
	entry T
	peer  Peer
}

// wantEntries returns the desired neighbour and FDB entries of the peers on
// the link with index idx, in the peers' order, and an error for each peer
// that is invalid or conflicts with an earlier one (it is skipped).
func wantEntries(idx int, dev Device, v6 bool, peers []Peer) ([]peerEntry[Neigh], []peerEntry[FDB], []error) {
	var (
		neighs []peerEntry[Neigh]
		fdb    []peerEntry[FDB]
		errs   []error
	)
	byAddr := map[netip.Addr]string{}
	byMAC := map[string]string{}
	for _, p := range peers {
		mac := p.MAC.String()
		err := p.validate(v6)
		switch {
		case err != nil:
		case p.TunnelAddr == dev.Addr.Addr():
			err = errors.New("its tunnel address is this host's")
		case strings.EqualFold(mac, dev.MAC.String()):
			err = errors.New("its VTEP MAC is this host's")
		case byAddr[p.TunnelAddr] != "":
			err = fmt.Errorf("tunnel address %s is also peer %s's", p.TunnelAddr, byAddr[p.TunnelAddr])
		case byMAC[mac] != "":
			err = fmt.Errorf("VTEP MAC %s is also peer %s's", mac, byMAC[mac])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s (%s): %w", p.Node, p.TunnelAddr, err))
			continue
		}
		byAddr[p.TunnelAddr], byMAC[mac] = cmpOr(p.Node, p.TunnelAddr.String()), cmpOr(p.Node, mac)
		neighs = append(neighs, peerEntry[Neigh]{Neigh{LinkIndex: idx, IP: p.TunnelAddr, MAC: mac, Permanent: true}, p})
		fdb = append(fdb, peerEntry[FDB]{FDB{LinkIndex: idx, MAC: mac, Dst: p.Underlay, Permanent: true}, p})
	}
	return neighs, fdb, errs
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// entriesLocked removes the device's entries nobody wants, then adds or
// replaces the wanted ones that differ. Removing first lets a peer whose
// underlay address changed get a clean entry even when its MAC has several
// remotes.
func (r *Reconciler) entriesLocked(ds *devState, neighs []peerEntry[Neigh], fdb []peerEntry[FDB]) []error {
	var errs []error
	name := ds.link.Name
	wantIP := map[netip.Addr]bool{}
	for _, n := range neighs {
		wantIP[n.entry.IP] = true
	}
	wantFDB := map[fdbKey]bool{}
	for _, e := range fdb {
		wantFDB[fdbKey{e.entry.MAC, e.entry.Dst}] = true
	}
	for _, ip := range slices.SortedFunc(maps.Keys(ds.neighs), netip.Addr.Compare) {
		if wantIP[ip] {
			continue
		}
		n := ds.neighs[ip]
		if err := r.k.DeleteNeigh(n); err != nil {
			errs = append(errs, fmt.Errorf("removing neighbour %s: %w", NeighText(n, name), err))
			continue
		}
		r.writes++
		r.log.Info("removed a stale vxlan neighbour entry", "neighbour", NeighText(n, name))
		delete(ds.neighs, ip)
	}
	for _, k := range slices.SortedFunc(maps.Keys(ds.fdb), compareFDBKey) {
		if wantFDB[k] {
			continue
		}
		e := ds.fdb[k]
		if err := r.k.DeleteFDB(e); err != nil {
			errs = append(errs, fmt.Errorf("removing FDB entry %s: %w", FDBText(e, name), err))
			continue
		}
		r.writes++
		r.log.Info("removed a stale vxlan FDB entry", "fdb", FDBText(e, name))
		delete(ds.fdb, k)
	}
	// FDB before neighbour: once the neighbour entry exists the kernel
	// sends to the MAC, which should then have somewhere to go.
	for _, e := range fdb {
		k := fdbKey{e.entry.MAC, e.entry.Dst}
		if _, ok := ds.fdb[k]; ok {
			continue
		}
		if err := r.k.SetFDB(e.entry); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: adding FDB entry %s: %w", e.peer.Node, FDBText(e.entry, name), err))
			continue
		}
		r.writes++
		ds.fdb[k] = e.entry
	}
	for _, n := range neighs {
		if cur, ok := ds.neighs[n.entry.IP]; ok && strings.EqualFold(cur.MAC, n.entry.MAC) {
			continue
		}
		if err := r.k.SetNeigh(n.entry); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: adding neighbour %s: %w", n.peer.Node, NeighText(n.entry, name), err))
			continue
		}
		r.writes++
		ds.neighs[n.entry.IP] = n.entry
	}
	return errs
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func compareFDBKey(a, b fdbKey) int {
	if c := strings.Compare(a.mac, b.mac); c != 0 {
		return c
	}
	return a.dst.Compare(b.dst)
}
