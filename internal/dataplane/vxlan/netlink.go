package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Kernel of a network namespace, through one netlink handle
// whose sockets live in the namespace (usable from any goroutine).
type Netlink struct {
	h *netlink.Handle
}

var _ Kernel = (*Netlink)(nil)

// NewNetlink returns the Kernel of n. Close it when done.
func NewNetlink(n *netns.NS) (*Netlink, error) {
	h, err := n.NewNetlinkHandle()
	if err != nil {
		return nil, err
	}
	return &Netlink{h: h}, nil
}

// Close closes the netlink handle.
func (k *Netlink) Close() { k.h.Close() }

// notFound maps the kernel's "no such device" answers to LinkNotFound.
func notFound(name string, err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) {
		return LinkNotFound(name)
	}
	return err
}

// LinkByName implements Kernel.
func (k *Netlink) LinkByName(name string) (Link, error) {
	l, err := k.h.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("looking up %s: %w", name, notFound(name, err))
	}
	a := l.Attrs()
	out := Link{
		Index: a.Index, Name: a.Name, Kind: l.Type(), MTU: a.MTU,
		MAC: a.HardwareAddr.String(), Up: a.Flags&net.FlagUp != 0,
	}
	if v, ok := l.(*netlink.Vxlan); ok {
		out.VNI, out.Port, out.Learning = v.VxlanId, v.Port, v.Learning
		if ip, ok := netip.AddrFromSlice(v.SrcAddr); ok {
			out.Local = ip.Unmap()
		}
		if v.VtepDevIndex != 0 {
			out.Parent = fmt.Sprintf("if%d", v.VtepDevIndex)
			if p, err := k.h.LinkByIndex(v.VtepDevIndex); err == nil {
				out.Parent = p.Attrs().Name
			}
		}
	}
	return out, nil
}

// dev names an existing link by index for the calls that need a
// netlink.Link.
func dev(l Link) *netlink.Device {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}
}

// ReadLink implements Kernel.
func (k *Netlink) ReadLink(l Link) (LinkState, error) {
	var st LinkState
	addrs, err := nlsafe.AddrList(k.h, dev(l), netlink.FAMILY_ALL)
	if err != nil {
		return st, notFound(l.Name, err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ones, _ := a.Mask.Size()
			st.Addrs = append(st.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := nlsafe.NeighList(k.h, l.Index, fam)
		if err != nil {
			return st, err
		}
		for _, n := range ns {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || n.LinkIndex != l.Index || n.Flags&netlink.NTF_PROXY != 0 {
				continue
			}
			st.Neighs = append(st.Neighs, Neigh{
				LinkIndex: n.LinkIndex, IP: ip.Unmap(), MAC: n.HardwareAddr.String(),
				Permanent: n.State&netlink.NUD_PERMANENT != 0,
			})
		}
	}
	fdb, err := nlsafe.NeighList(k.h, l.Index, unix.AF_BRIDGE)
	if err != nil {
		return st, err
	}
	for _, n := range fdb {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != l.Index || len(n.HardwareAddr) != 6 || n.HardwareAddr[0]&0x01 != 0 {
			continue // not a unicast entry towards a remote: not one Calyx makes
		}
		st.FDB = append(st.FDB, FDB{
			LinkIndex: n.LinkIndex, MAC: n.HardwareAddr.String(), Dst: ip.Unmap(),
			Permanent: n.State&netlink.NUD_PERMANENT != 0,
		})
	}
	return st, nil
}

// AddLink implements Kernel.
func (k *Netlink) AddLink(l Link) (Link, error) {
	mac, err := net.ParseMAC(l.MAC)
	if err != nil {
		return Link{}, fmt.Errorf("adding %s: %w", l.Name, err)
	}
	v := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: l.Name, MTU: l.MTU, HardwareAddr: mac},
		VxlanId:   l.VNI,
		SrcAddr:   l.Local.AsSlice(),
		Port:      l.Port,
		Learning:  l.Learning,
	}
	if l.Parent != "" {
		p, err := k.h.LinkByName(l.Parent)
		if err != nil {
			return Link{}, fmt.Errorf("adding %s: looking up its parent: %w", l.Name, notFound(l.Parent, err))
		}
		v.VtepDevIndex = p.Attrs().Index
	}
	if err := k.h.LinkAdd(v); err != nil {
		return Link{}, fmt.Errorf("adding %s: %w", l.Name, err)
	}
	return k.LinkByName(l.Name)
}

// DeleteLink implements Kernel.
func (k *Netlink) DeleteLink(l Link) error {
	return notFound(l.Name, k.h.LinkDel(dev(l)))
}

// SetLinkMTU implements Kernel.
func (k *Netlink) SetLinkMTU(l Link, mtu int) error {
	return notFound(l.Name, k.h.LinkSetMTU(dev(l), mtu))
}

// SetLinkMAC implements Kernel.
func (k *Netlink) SetLinkMAC(l Link, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	return notFound(l.Name, k.h.LinkSetHardwareAddr(dev(l), hw))
}

// SetLinkUp implements Kernel.
func (k *Netlink) SetLinkUp(l Link) error {
	return notFound(l.Name, k.h.LinkSetUp(dev(l)))
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		// The address is this host's by allocation; waiting a second for
		// duplicate address detection would only delay the overlay.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// AddAddr implements Kernel.
func (k *Netlink) AddAddr(l Link, p netip.Prefix) error {
	return notFound(l.Name, k.h.AddrReplace(dev(l), nlAddr(p)))
}

// DeleteAddr implements Kernel. A missing address is not an error.
func (k *Netlink) DeleteAddr(l Link, p netip.Prefix) error {
	if err := k.h.AddrDel(dev(l), nlAddr(p)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return notFound(l.Name, err)
	}
	return nil
}

func nlNeigh(n Neigh) (*netlink.Neigh, error) {
	mac, err := net.ParseMAC(n.MAC)
	if err != nil && n.MAC != "" {
		return nil, err
	}
	fam := netlink.FAMILY_V4
	if n.IP.Is6() {
		fam = netlink.FAMILY_V6
	}
	return &netlink.Neigh{
		LinkIndex: n.LinkIndex, Family: fam, IP: n.IP.AsSlice(), HardwareAddr: mac, State: netlink.NUD_PERMANENT,
	}, nil
}

// SetNeigh implements Kernel.
func (k *Netlink) SetNeigh(n Neigh) error {
	nn, err := nlNeigh(n)
	if err != nil {
		return err
	}
	return k.h.NeighSet(nn)
}

// DeleteNeigh implements Kernel. A missing entry is not an error.
func (k *Netlink) DeleteNeigh(n Neigh) error {
	nn, err := nlNeigh(n)
	if err != nil {
		return err
	}
	if err := k.h.NeighDel(nn); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

// nlFDB is an FDB entry as rtnetlink wants it: an AF_BRIDGE neighbour of
// the device itself (NTF_SELF), permanent, whose IP is the remote.
func nlFDB(e FDB) (*netlink.Neigh, error) {
	mac, err := net.ParseMAC(e.MAC)
	if err != nil {
		return nil, err
	}
	return &netlink.Neigh{
		LinkIndex: e.LinkIndex, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
		HardwareAddr: mac, IP: e.Dst.AsSlice(),
	}, nil
}

// SetFDB implements Kernel.
func (k *Netlink) SetFDB(e FDB) error {
	n, err := nlFDB(e)
	if err != nil {
		return err
	}
	return k.h.NeighSet(n)
}

// DeleteFDB implements Kernel. A missing entry is not an error.
func (k *Netlink) DeleteFDB(e FDB) error {
	n, err := nlFDB(e)
	if err != nil {
		return err
	}
	if err := k.h.NeighDel(n); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}
