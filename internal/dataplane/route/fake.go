package route

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Fake is an in-memory Kernel for tests. It behaves like the kernel where
// the reconciler can tell: deleting a link removes its routes, neighbour
// entries and sysctls; per-interface sysctls exist only for existing links
// and start at the kernel's defaults. Render shows its state as golden
// text, and Writes counts the writes made through the Kernel interface.
type Fake struct {
	mu      sync.Mutex // guards the following fields
	links   map[int]*Link
	next    int
	routes  map[netip.Prefix]Route
	neighs  map[neighKey]Neigh
	sysctls map[string]string // values written or seeded; others are defaults
	writes  int
	reads   int // sysctl keys read
	// failWrites, when set, makes every write fail with it.
	failWrites error
}

var _ Kernel = (*Fake)(nil)

// NewFake returns a fake kernel holding only lo.
func NewFake() *Fake {
	return &Fake{
		links:   map[int]*Link{1: {Index: 1, Name: "lo", Up: true}},
		next:    2,
		routes:  map[netip.Prefix]Route{},
		neighs:  map[neighKey]Neigh{},
		sysctls: map[string]string{},
	}
}

// AddLink creates a link that is down, as a veth the CNI plugin just made,
// and returns it. It is not counted as a write.
func (f *Fake) AddLink(name string) Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &Link{Index: f.next, Name: name}
	f.next++
	f.links[l.Index] = l
	return *l
}

// RemoveLink removes a link as the kernel does when its peer's namespace
// goes away. It is not counted as a write.
func (f *Fake) RemoveLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.byNameLocked(name); l != nil {
		f.removeLocked(*l)
	}
}

// AddRoute seeds a route (e.g. one left by an earlier run or by someone
// else). It is not counted as a write.
func (f *Fake) AddRoute(r Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[r.Dst] = r
}

// AddNeigh seeds a neighbour entry. It is not counted as a write.
func (f *Fake) AddNeigh(n Neigh) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.neighs[neighKey{n.IP, n.LinkIndex}] = n
}

// SetFailWrites makes every later write fail with err (nil: succeed).
func (f *Fake) SetFailWrites(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWrites = err
}

// Writes returns how many writes were made through the Kernel interface.
func (f *Fake) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// Render returns the state as sorted golden lines:
//
//	link calyx0123456789 up
//	route 10.65.0.7/32 dev calyx0123456789 proto 80 scope link
//	route 10.65.1.0/26 via 192.0.2.12 dev eth0 proto 80
//	route blackhole 10.65.0.0/26 proto 80
//	neigh 10.65.0.7 dev calyx0123456789 lladdr 02:00:00:00:00:07 PERMANENT
//	sysctl net/ipv4/conf/calyx0123456789/proxy_arp=1
//
// lo is left out, and so are sysctls still at their defaults.
func (f *Fake) Render() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.links {
		if l.Name == "lo" {
			continue
		}
		state := "down"
		if l.Up {
			state = "up"
		}
		out = append(out, "link "+l.Name+" "+state)
	}
	for _, r := range f.routes {
		out = append(out, "route "+RouteText(r, f.nameLocked(r.LinkIndex)))
	}
	for _, n := range f.neighs {
		out = append(out, "neigh "+NeighText(n, f.nameLocked(n.LinkIndex)))
	}
	for k, v := range f.sysctls {
		if def, _ := f.defaultLocked(k); v != def {
			out = append(out, "sysctl "+SysctlText(Sysctl{Key: k, Value: v}))
		}
	}
	slices.Sort(out)
	return out
}

func (f *Fake) nameLocked(idx int) string {
	if l := f.links[idx]; l != nil {
		return l.Name
	}
	return ""
}

func (f *Fake) byNameLocked(name string) *Link {
	for _, l := range f.links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func (f *Fake) removeLocked(l Link) {
	delete(f.links, l.Index)
	maps.DeleteFunc(f.routes, func(_ netip.Prefix, r Route) bool { return r.LinkIndex == l.Index })
	maps.DeleteFunc(f.neighs, func(k neighKey, _ Neigh) bool { return k.idx == l.Index })
	maps.DeleteFunc(f.sysctls, func(k, _ string) bool { return isIfaceKey(k, l.Name) })
}

// defaultLocked returns the kernel's default for a key, and whether the
// key exists: the global forwarding keys, and per-interface keys of
// existing links.
func (f *Fake) defaultLocked(key string) (string, bool) {
	if key == keyIPv4Forward || key == keyIPv6Forward {
		return "0", true
	}
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "net" || f.byNameLocked(parts[3]) == nil {
		return "", false
	}
	switch parts[4] {
	case "proxy_delay":
		return "80", true
	case "accept_ra":
		return "1", true
	}
	return "0", true
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

// LinkByIndex implements Kernel.
func (f *Fake) LinkByIndex(idx int) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.links[idx]; l != nil {
		return *l, nil
	}
	return Link{}, LinkNotFound(fmt.Sprintf("index %d", idx))
}

// LinkNames implements Kernel.
func (f *Fake) LinkNames() (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]bool, len(f.links))
	for _, l := range f.links {
		out[l.Name] = true
	}
	return out, nil
}

// SetLinkUp implements Kernel.
func (f *Fake) SetLinkUp(l Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.links[l.Index]
	if cur == nil {
		return LinkNotFound(l.Name)
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	cur.Up = true
	return nil
}

// DeleteLink implements Kernel.
func (f *Fake) DeleteLink(l Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.links[l.Index]
	if cur == nil {
		return LinkNotFound(l.Name)
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	f.removeLocked(*cur)
	return nil
}

// Dump implements Kernel.
func (f *Fake) Dump() (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st State
	for _, l := range f.links {
		st.Links = append(st.Links, *l)
	}
	st.Routes = slices.Collect(maps.Values(f.routes))
	st.Neighs = slices.Collect(maps.Values(f.neighs))
	return st, nil
}

// ReplaceRoute implements Kernel. Like the kernel, it keys routes by
// destination, refuses a device that does not exist, an onlink route
// without a device and a gateway no device route covers (ENETUNREACH),
// and fills in the device of a gateway route written without one.
// Routes that are not unicast have no device.
func (f *Fake) ReplaceRoute(r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Type != Unicast {
		r.LinkIndex = 0
	} else if err := f.resolveLocked(&r); err != nil {
		return fmt.Errorf("adding route %s: %w", RouteText(r, f.nameLocked(r.LinkIndex)), err)
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	f.routes[r.Dst] = r
	return nil
}

// resolveLocked checks a unicast route's next hop as the kernel does and
// sets its device when only the gateway was given.
func (f *Fake) resolveLocked(r *Route) error {
	if r.LinkIndex != 0 && f.links[r.LinkIndex] == nil {
		return fmt.Errorf("no device with index %d: %w", r.LinkIndex, syscall.ENODEV)
	}
	switch {
	case !r.Gw.IsValid() && r.LinkIndex == 0:
		return fmt.Errorf("no device and no gateway: %w", syscall.EINVAL)
	case !r.Gw.IsValid():
		return nil
	case r.Gw.Is4() != r.Dst.Addr().Is4():
		return fmt.Errorf("gateway of another family: %w", syscall.EINVAL)
	case r.OnLink && r.LinkIndex == 0:
		return fmt.Errorf("onlink without a device: %w", syscall.EINVAL)
	case r.OnLink:
		return nil
	}
	for _, c := range f.routes {
		if c.Type == Unicast && !c.Gw.IsValid() && c.LinkIndex != 0 && c.Dst.Contains(r.Gw) &&
			(r.LinkIndex == 0 || r.LinkIndex == c.LinkIndex) {
			r.LinkIndex = c.LinkIndex
			return nil
		}
	}
	return fmt.Errorf("gateway %s: %w", r.Gw, syscall.ENETUNREACH)
}

// DeleteRoute implements Kernel. Like the kernel, it leaves a route whose
// protocol or type differ from r's (a zero protocol matches any); a
// missing route is not an error.
func (f *Fake) DeleteRoute(r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writeLocked(); err != nil {
		return err
	}
	cur, ok := f.routes[r.Dst]
	if !ok || (r.Protocol != 0 && cur.Protocol != r.Protocol) || cur.Type != r.Type {
		return nil
	}
	delete(f.routes, r.Dst)
	return nil
}

// SetNeigh implements Kernel.
func (f *Fake) SetNeigh(n Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[n.LinkIndex] == nil {
		return fmt.Errorf("adding neighbour %s: no device with index %d", n.IP, n.LinkIndex)
	}
	if err := f.writeLocked(); err != nil {
		return err
	}
	f.neighs[neighKey{n.IP, n.LinkIndex}] = n
	return nil
}

// DeleteNeigh implements Kernel.
func (f *Fake) DeleteNeigh(n Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writeLocked(); err != nil {
		return err
	}
	delete(f.neighs, neighKey{n.IP, n.LinkIndex})
	return nil
}

// SysctlReads returns how many sysctl keys were read.
func (f *Fake) SysctlReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// ReadSysctls implements Kernel.
func (f *Fake) ReadSysctls(keys []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	f.reads += len(keys)
	for _, k := range keys {
		def, ok := f.defaultLocked(k)
		if !ok {
			continue
		}
		if v, set := f.sysctls[k]; set {
			def = v
		}
		out[k] = def
	}
	return out, nil
}

// WriteSysctls implements Kernel.
func (f *Fake) WriteSysctls(s []Sysctl) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, x := range s {
		if _, ok := f.defaultLocked(x.Key); !ok {
			errs = append(errs, fmt.Errorf("writing sysctl %s: %w", x.Key, fs.ErrNotExist))
			continue
		}
		if err := f.writeLocked(); err != nil {
			errs = append(errs, err)
			continue
		}
		f.sysctls[x.Key] = x.Value
	}
	return errors.Join(errs...)
}
