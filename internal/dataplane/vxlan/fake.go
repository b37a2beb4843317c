package vxlan

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory Kernel for tests. It behaves like the kernel where
// the reconciler can tell: deleting a link removes its addresses and
// entries; a link brought up gets an IPv6 link-local address; a VNI and
// port pair is used by at most one device per family; a parent must
// exist. Render shows its state as golden text, and Writes counts the
// writes made through the Kernel interface.
type Fake struct {
	mu     sync.Mutex // guards the following fields
	links  map[int]*Link
	next   int
	addrs  map[int]map[netip.Prefix]bool
	neighs map[int]map[netip.Addr]Neigh
	fdb    map[int]map[fdbKey]FDB
	writes int
	// failWrites, when set, makes every write fail with it.
	failWrites error
	// failFor, when set, makes writes of neighbour and FDB entries for
	// this address (tunnel or underlay) fail.
	failFor netip.Addr
}

var _ Kernel = (*Fake)(nil)

// NewFake returns a fake kernel holding only lo.
func NewFake() *Fake {
	f := &Fake{
		links:  map[int]*Link{},
		next:   1,
		addrs:  map[int]map[netip.Prefix]bool{},
		neighs: map[int]map[netip.Addr]Neigh{},
		fdb:    map[int]map[fdbKey]FDB{},
	}
	f.addLocked(Link{Name: "lo", Kind: "loopback", MTU: 65536, MAC: "00:00:00:00:00:00", Up: true})
	return f
}

// Seed adds a link as someone else made it (Index is assigned), e.g. an
// underlay interface or a stale device. It is not counted as a write.
func (f *Fake) Seed(l Link) Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(l)
}

// SeedAddr adds an address to the named link as someone else would. It
// is not counted as a write.
func (f *Fake) SeedAddr(name string, p netip.Prefix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		f.addrs[l.Index][p] = true
	}
}

// SeedNeigh adds a neighbour entry to the named link as someone else
// would. It is not counted as a write.
func (f *Fake) SeedNeigh(name string, n Neigh) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		n.LinkIndex = l.Index
		f.neighs[l.Index][n.IP] = n
	}
}

// SeedFDB adds an FDB entry to the named link as someone else would. It
// is not counted as a write.
func (f *Fake) SeedFDB(name string, e FDB) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		e.LinkIndex = l.Index
		f.fdb[l.Index][fdbKey{e.MAC, e.Dst}] = e
	}
}

// Unseed removes entries as an operator would (`ip neigh del`, `bridge
// fdb del`): the neighbour entry for ip, and the FDB entries towards ip.
// It is not counted as a write.
func (f *Fake) Unseed(name string, ip netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		delete(f.neighs[l.Index], ip)
		maps.DeleteFunc(f.fdb[l.Index], func(k fdbKey, _ FDB) bool { return k.dst == ip })
	}
}

// SetFailWrites makes every later write fail with err (nil: succeed).
func (f *Fake) SetFailWrites(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWrites = err
}

// SetFailFor makes writes of neighbour and FDB entries for address a fail
// (the zero Addr: none).
func (f *Fake) SetFailFor(a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failFor = a
}

// Writes returns how many writes were made through the Kernel interface.
func (f *Fake) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// Render returns the state as golden text, one line per object, sorted
// within each link, links in name order:
//
//	link vxlan.calyx vxlan id 4096 local 192.0.2.1 dstport 4789 nolearning mtu 1450 address 02:..:01 up
//	addr 10.244.0.1/32 dev vxlan.calyx
//	neigh 10.244.0.2 dev vxlan.calyx lladdr 02:..:02 PERMANENT
//	fdb 02:..:02 dev vxlan.calyx dst 192.0.2.2 self permanent
//
// lo is left out.
func (f *Fake) Render() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	links := slices.Collect(maps.Values(f.links))
	slices.SortFunc(links, func(a, b *Link) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for _, l := range links {
		if l.Name == "lo" {
			continue
		}
		b.WriteString("link " + LinkText(*l) + "\n")
		var lines []string
		for p := range f.addrs[l.Index] {
			lines = append(lines, "addr "+AddrText(p, l.Name))
		}
		slices.Sort(lines)
		for _, n := range slices.SortedFunc(maps.Values(f.neighs[l.Index]), func(a, b Neigh) int { return a.IP.Compare(b.IP) }) {
			lines = append(lines, "neigh "+NeighText(n, l.Name))
		}
		for _, k := range slices.SortedFunc(maps.Keys(f.fdb[l.Index]), compareFDBKey) {
			lines = append(lines, "fdb "+FDBText(f.fdb[l.Index][k], l.Name))
		}
		for _, s := range lines {
			b.WriteString("  " + s + "\n")
		}
	}
	return b.String()
}

func (f *Fake) addLocked(l Link) Link {
	l.Index = f.next
	f.next++
	cp := l
	f.links[l.Index] = &cp
	f.addrs[l.Index] = map[netip.Prefix]bool{}
	f.neighs[l.Index] = map[netip.Addr]Neigh{}
	f.fdb[l.Index] = map[fdbKey]FDB{}
	return l
}

func (f *Fake) byNameLocked(name string) *Link {
	for _, l := range f.links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// linkLocked returns the link l names, by index, as the kernel finds it.
func (f *Fake) linkLocked(l Link) (*Link, error) {
	cur := f.links[l.Index]
	if cur == nil {
		return nil, LinkNotFound(l.Name)
	}
	return cur, nil
}

func (f *Fake) writeLocked() error {
	if f.failWrites != nil {
		return f.failWrites
	}
	f.writes++
	return nil
}

// LinkByName implements Kernel.
func (f *Fake) LinkByName(name string) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		return *l, nil
	}
	return Link{}, LinkNotFound(name)
}

// ReadLink implements Kernel.
func (f *Fake) ReadLink(l Link) (LinkState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.linkLocked(l); err != nil {
		return LinkState{}, err
	}
	return LinkState{
		Addrs:  slices.Collect(maps.Keys(f.addrs[l.Index])),
		Neighs: slices.Collect(maps.Values(f.neighs[l.Index])),
		FDB:    slices.Collect(maps.Values(f.fdb[l.Index])),
	}, nil
}

// errExists is what the fake returns for a name or VNI already in use.
var errExists = errors.New("file exists")

// AddLink implements Kernel.
func (f *Fake) AddLink(l Link) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byNameLocked(l.Name) != nil {
		return Link{}, fmt.Errorf("adding %s: %w", l.Name, errExists)
	}
	for _, o := range f.links {
		if o.Kind == KindVXLAN && o.VNI == l.VNI && o.Port == l.Port && o.Local.Is6() == l.Local.Is6() {
			return Link{}, fmt.Errorf("adding %s: VNI %d is used by %s: %w", l.Name, l.VNI, o.Name, errExists)
		}
	}
	if l.Parent != "" && f.byNameLocked(l.Parent) == nil {
		return Link{}, LinkNotFound(l.Parent)
	}
	if _, err := net.ParseMAC(l.MAC); err != nil {
		return Link{}, fmt.Errorf("adding %s: %w", l.Name, err)
	}
	if err := f.writeLocked(); err != nil {
		return Link{}, err
	}
	l.Up = false
	return f.addLocked(l), nil
}

// DeleteLink implements Kernel.
func (f *Fake) DeleteLink(l Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.linkLocked(l); err != nil {
		return err
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	delete(f.links, l.Index)
	delete(f.addrs, l.Index)
	delete(f.neighs, l.Index)
	delete(f.fdb, l.Index)
	return nil
}

// SetLinkMTU implements Kernel.
func (f *Fake) SetLinkMTU(l Link, mtu int) error {
	return f.modify(l, func(cur *Link) { cur.MTU = mtu })
}

// SetLinkMAC implements Kernel.
func (f *Fake) SetLinkMAC(l Link, mac string) error {
	if _, err := net.ParseMAC(mac); err != nil {
		return err
	}
	return f.modify(l, func(cur *Link) { cur.MAC = mac })
}

// SetLinkUp implements Kernel. The link gets its IPv6 link-local address,
// as with the kernel's addrgenmode eui64.
func (f *Fake) SetLinkUp(l Link) error {
	return f.modify(l, func(cur *Link) {
		cur.Up = true
		mac, _ := net.ParseMAC(cur.MAC)
		if len(mac) == 6 {
			ll := [16]byte{0xfe, 0x80, 8: mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}
			f.addrs[cur.Index][netip.PrefixFrom(netip.AddrFrom16(ll), 64)] = true
		}
	})
}

func (f *Fake) modify(l Link, fn func(*Link)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.linkLocked(l)
	if err != nil {
		return err
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	fn(cur)
	return nil
}

// AddAddr implements Kernel.
func (f *Fake) AddAddr(l Link, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.linkLocked(l); err != nil {
		return err
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	f.addrs[l.Index][p] = true
	return nil
}

// DeleteAddr implements Kernel.
func (f *Fake) DeleteAddr(l Link, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.linkLocked(l); err != nil {
		return err
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	delete(f.addrs[l.Index], p)
	return nil
}

// entryLocked checks a neighbour or FDB write on link idx for address a.
func (f *Fake) entryLocked(idx int, a netip.Addr) error {
	if f.links[idx] == nil {
		return LinkNotFound(fmt.Sprintf("if%d", idx))
	}
	if f.failFor.IsValid() && a == f.failFor {
		return fmt.Errorf("writing an entry for %s: injected failure", a)
	}
	return f.writeLocked()
}

// SetNeigh implements Kernel.
func (f *Fake) SetNeigh(n Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.entryLocked(n.LinkIndex, n.IP); err != nil {
		return err
	}
	n.Permanent = true
	f.neighs[n.LinkIndex][n.IP] = n
	return nil
}

// DeleteNeigh implements Kernel.
func (f *Fake) DeleteNeigh(n Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.entryLocked(n.LinkIndex, n.IP); err != nil {
		return err
	}
	delete(f.neighs[n.LinkIndex], n.IP)
	return nil
}

// SetFDB implements Kernel. Like the kernel's NLM_F_REPLACE, it changes
// the first remote of a MAC that has any.
func (f *Fake) SetFDB(e FDB) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.entryLocked(e.LinkIndex, e.Dst); err != nil {
		return err
	}
	m := f.fdb[e.LinkIndex]
	for _, k := range slices.SortedFunc(maps.Keys(m), compareFDBKey) {
		if k.mac == e.MAC {
			delete(m, k)
			break
		}
	}
	e.Permanent = true
	m[fdbKey{e.MAC, e.Dst}] = e
	return nil
}

// DeleteFDB implements Kernel.
func (f *Fake) DeleteFDB(e FDB) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.entryLocked(e.LinkIndex, e.Dst); err != nil {
		return err
	}
	delete(f.fdb[e.LinkIndex], fdbKey{e.MAC, e.Dst})
	return nil
}
