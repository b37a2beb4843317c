package route

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Kernel of a network namespace: netlink for links, routes
// and neighbours (one handle whose sockets live in the namespace, usable
// from any goroutine) and /proc/sys for sysctls (read and written on a
// thread in the namespace, one switch per batch).
type Netlink struct {
	ns *netns.NS
	h  *netlink.Handle
}

var _ Kernel = (*Netlink)(nil)

// NewNetlink returns the Kernel of n. Close it when done.
func NewNetlink(n *netns.NS) (*Netlink, error) {
	h, err := n.NewNetlinkHandle()
	if err != nil {
		return nil, err
	}
	return &Netlink{ns: n, h: h}, nil
}

// Handle returns the netlink handle, for callers that read other state of
// the namespace (e.g. the default route).
func (k *Netlink) Handle() *netlink.Handle { return k.h }

// Close closes the netlink handle.
func (k *Netlink) Close() { k.h.Close() }

func toLink(l netlink.Link) Link {
	a := l.Attrs()
	return Link{Index: a.Index, Name: a.Name, Up: a.Flags&net.FlagUp != 0}
}

// LinkByName implements Kernel. It reads the link on a socket of its own
// (nlsafe.LinkByName), which with --netns means entering the namespace
// for each lookup: a thread switch, tens of microseconds, where the
// library's decoding of the whole link cost some 8 KB of garbage.
func (k *Netlink) LinkByName(name string) (Link, error) {
	var b nlsafe.LinkBrief
	err := k.ns.Do(func() error {
		var err error
		b, err = nlsafe.LinkByName(name)
		return err
	})
	if err != nil {
		if errors.Is(err, syscall.ENODEV) {
			return Link{}, LinkNotFound(name)
		}
		return Link{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	return briefLink(b), nil
}

func briefLink(b nlsafe.LinkBrief) Link {
	return Link{Index: b.Index, Name: b.Name, Up: b.Flags&unix.IFF_UP != 0}
}

// LinkByIndex implements Kernel.
func (k *Netlink) LinkByIndex(idx int) (Link, error) {
	l, err := k.h.LinkByIndex(idx)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) {
			return Link{}, LinkNotFound(fmt.Sprintf("index %d", idx))
		}
		return Link{}, fmt.Errorf("looking up link %d: %w", idx, err)
	}
	return toLink(l), nil
}

// LinkNames implements Kernel.
func (k *Netlink) LinkNames() (map[string]bool, error) {
	links, err := k.links()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(links))
	for _, l := range links {
		out[l.Name] = true
	}
	return out, nil
}

// links lists the namespace's links: index, name and whether up.
func (k *Netlink) links() ([]Link, error) {
	var bs []nlsafe.LinkBrief
	err := k.ns.Do(func() error {
		var err error
		bs, err = nlsafe.Links()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	return briefLinks(bs), nil
}

func briefLinks(bs []nlsafe.LinkBrief) []Link {
	out := make([]Link, len(bs))
	for i, b := range bs {
		out[i] = briefLink(b)
	}
	return out
}

func device(l Link) *netlink.Device {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}
}

// SetLinkUp implements Kernel.
func (k *Netlink) SetLinkUp(l Link) error {
	if err := k.h.LinkSetUp(device(l)); err != nil {
		if errors.Is(err, syscall.ENODEV) {
			return LinkNotFound(l.Name)
		}
		return err
	}
	return nil
}

// DeleteLink implements Kernel.
func (k *Netlink) DeleteLink(l Link) error {
	if err := k.h.LinkDel(device(l)); err != nil {
		if errors.Is(err, syscall.ENODEV) {
			return LinkNotFound(l.Name)
		}
		return err
	}
	return nil
}

// Dump implements Kernel.
func (k *Netlink) Dump() (State, error) {
	var st State
	var links []nlsafe.LinkBrief
	var ns [2][]nlsafe.NeighBrief
	if err := k.ns.Do(func() error { // one visit to the namespace for all of it
		var err error
		if links, err = nlsafe.Links(); err != nil {
			return fmt.Errorf("listing links: %w", err)
		}
		if st.Routes, err = nlsafe.MainRoutes(fromBrief); err != nil {
			return err
		}
		for i, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if ns[i], err = nlsafe.Neighs(fam); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return st, err
	}
	st.Links = briefLinks(links)
	for _, n := range slices.Concat(ns[0], ns[1]) {
		if n.Flags&unix.NTF_PROXY == 0 {
			st.Neighs = append(st.Neighs, Neigh{IP: n.IP, LinkIndex: n.LinkIndex, MAC: n.MAC, Permanent: n.State&unix.NUD_PERMANENT != 0})
		}
	}
	return st, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// fromBrief converts a main-table route read from the kernel as
// fromNetlinkRoute does.
func fromBrief(r nlsafe.RouteBrief) (Route, bool) {
	out := Route{
		Dst: r.Dst, LinkIndex: r.LinkIndex, Protocol: int(r.Protocol), Scope: r.Scope,
		OnLink: r.Flags&unix.RTNH_F_ONLINK != 0, Gw: r.Gw,
	}
	if r.Type != unix.RTN_UNICAST {
		out.Type = RouteType(r.Type)
		out.LinkIndex = 0
	}
	return out, true
}

// fromNetlinkRoute converts a main-table route read from the kernel; ok
// is false for what is not an IP route. A default route has no
// destination attribute: its prefix is the family's /0. Routes that are
// not unicast get LinkIndex 0 even though the kernel gives IPv6 ones lo,
// so that a blackhole reads back the way it was written. Of the flags only
// onlink is kept (linkdown and the like are the kernel's, not the route's).
func fromNetlinkRoute(r netlink.Route) (Route, bool) {
	var p netip.Prefix
	switch {
	case r.Dst != nil:
		var ok bool
		if p, ok = prefixOf(r.Dst); !ok {
			return Route{}, false
		}
	case r.Family == netlink.FAMILY_V4:
		p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case r.Family == netlink.FAMILY_V6:
		p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		return Route{}, false
	}
	b := nlsafe.RouteBrief{
		Dst: p, Protocol: uint8(r.Protocol), Scope: uint8(r.Scope), Type: uint8(r.Type),
		Flags: uint32(r.Flags), LinkIndex: r.LinkIndex,
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		b.Gw = gw.Unmap()
	}
	return fromBrief(b)
}

func nlRoute(r Route) *netlink.Route {
	out := &netlink.Route{
		LinkIndex: r.LinkIndex, Dst: ipNet(r.Dst),
		Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope),
	}
	if r.Gw.IsValid() {
		out.Gw = r.Gw.AsSlice()
	}
	if r.OnLink {
		out.Flags = int(netlink.FLAG_ONLINK)
	}
	if r.Type != Unicast {
		out.Type = int(r.Type)
		out.LinkIndex = 0
	}
	return out
}

// ReplaceRoute implements Kernel. A unicast route needs a device or a
// gateway the kernel can reach (ENETUNREACH otherwise); an onlink one
// needs both.
func (k *Netlink) ReplaceRoute(r Route) error { return k.h.RouteReplace(nlRoute(r)) }

// DeleteRoute implements Kernel. The kernel deletes the route to r.Dst
// that matches r's protocol, type, scope and next hop, so r should be as
// Dump read it. A missing route is not an error, nor is a missing link,
// which took its routes with it.
func (k *Netlink) DeleteRoute(r Route) error {
	if err := k.h.RouteDel(nlRoute(r)); err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	return nil
}

func nlNeigh(n Neigh) (*netlink.Neigh, error) {
	fam := netlink.FAMILY_V4
	if n.IP.Is6() {
		fam = netlink.FAMILY_V6
	}
	out := &netlink.Neigh{LinkIndex: n.LinkIndex, Family: fam, IP: n.IP.AsSlice(), State: netlink.NUD_PERMANENT}
	if n.MAC != "" {
		mac, err := net.ParseMAC(n.MAC)
		if err != nil {
			return nil, err
		}
		out.HardwareAddr = mac
	}
	return out, nil
}

// SetNeigh implements Kernel.
func (k *Netlink) SetNeigh(n Neigh) error {
	nn, err := nlNeigh(n)
	if err != nil {
		return err
	}
	return k.h.NeighSet(nn)
}

// DeleteNeigh implements Kernel. A missing entry is not an error, nor is
// a missing link, which took its entries with it.
func (k *Netlink) DeleteNeigh(n Neigh) error {
	nn, err := nlNeigh(n)
	if err != nil {
		return err
	}
	if err := k.h.NeighDel(nn); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	return nil
}

// ReadSysctls implements Kernel.
func (k *Netlink) ReadSysctls(keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	err := k.ns.Do(func() error {
		for _, key := range keys {
			v, err := netns.ReadSysctl(key)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				return err
			}
			out[key] = v
		}
		return nil
	})
	return out, err
}

// WriteSysctls implements Kernel.
func (k *Netlink) WriteSysctls(s []Sysctl) error {
	return k.ns.Do(func() error {
		var errs []error
		for _, x := range s {
			errs = append(errs, netns.WriteSysctl(x.Key, x.Value))
		}
		return errors.Join(errs...)
	})
}
