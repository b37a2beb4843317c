package vxlan

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The devices the package owns, by name (at most 15 characters, IFNAMSIZ).
const (
	DeviceV4 = "vxlan.calyx"
	DeviceV6 = "vxlan-v6.calyx"
)

// Defaults for a Device's zero fields.
const (
	// DefaultVNI is the VXLAN network identifier, Calico's.
	DefaultVNI = 4096
	// DefaultPort is the IANA-assigned VXLAN UDP port.
	DefaultPort = 4789
)

// Encapsulation overhead: outer IP header + UDP 8 + VXLAN 8 + inner
// Ethernet 14.
const (
	overheadV4 = 20 + 8 + 8 + 14
	overheadV6 = 40 + 8 + 8 + 14
)

// MTU returns the MTU of a VXLAN device whose encapsulated packets leave
// through an underlay of underlayMTU: 50 bytes less over IPv4, 70 over
// IPv6.
func MTU(underlayMTU int, v6 bool) int {
	if v6 {
		return underlayMTU - overheadV6
	}
	return underlayMTU - overheadV4
}

// MACFor returns the VTEP MAC of the named node: six bytes of the SHA-256
// of its name, with the locally-administered bit set and the multicast bit
// clear. The same name always gives the same MAC, so a restarted host
// needs no datastore write and its peers' entries stay valid.
func MACFor(node string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("calyx-vxlan-vtep:" + node))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// Desired is the VXLAN state of a host: at most one device per family. A
// nil member means that device must not exist (it is removed, and its
// entries with it).
type Desired struct {
	V4 *Overlay // programs DeviceV4; all its addresses are IPv4
	V6 *Overlay // programs DeviceV6; all its addresses are IPv6
}

// String renders d for logs, one device per line.
func (d Desired) String() string {
	var b strings.Builder
	for _, o := range []struct {
		name string
		o    *Overlay
	}{{DeviceV4, d.V4}, {DeviceV6, d.V6}} {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		if o.o == nil {
			b.WriteString(o.name + ": absent")
			continue
		}
		b.WriteString(o.name + ": " + o.o.String())
	}
	return b.String()
}

// Overlay is one device and the peers reached through it.
type Overlay struct {
	Device Device
	Peers  []Peer
}

// String renders o for logs: the device, then one peer per line.
func (o Overlay) String() string {
	var b strings.Builder
	b.WriteString(o.Device.String())
	for _, p := range o.Peers {
		b.WriteString("\n  peer " + p.String())
	}
	return b.String()
}

// Device is a VXLAN device as desired. Learning is always off and the
// device has no remote or multicast group: peers are programmed one by
// one (see the package doc).
type Device struct {
	// VNI is the VXLAN network identifier (1 to 2^24-1); 0 means
	// DefaultVNI.
	VNI int
	// Port is the UDP destination port; 0 means DefaultPort.
	Port int
	// MTU is the device MTU (see MTU); it must be at least 68 (1280 for
	// IPv6).
	MTU int
	// MAC is this host's VTEP MAC (see MACFor): six bytes, unicast.
	MAC net.HardwareAddr
	// Local is the underlay address encapsulated packets are sent from.
	Local netip.Addr
	// Parent optionally names the underlay interface the device is bound
	// to ("" for none).
	Parent string
	// Addr is the tunnel address assigned to the device: a /32 or /128.
	Addr netip.Prefix
}

// String renders d the way `ip -d link` and `ip addr` show it, e.g.
// "vni 4096 dstport 4789 local 192.0.2.1 dev eth0 mtu 1450 address
// 02:..:01 addr 10.244.0.1/32".
func (d Device) String() string {
	d = d.withDefaults()
	s := fmt.Sprintf("vni %d dstport %d local %s", d.VNI, d.Port, d.Local)
	if d.Parent != "" {
		s += " dev " + d.Parent
	}
	return s + fmt.Sprintf(" mtu %d address %s addr %s", d.MTU, d.MAC, d.Addr)
}

func (d Device) withDefaults() Device {
	if d.VNI == 0 {
		d.VNI = DefaultVNI
	}
	if d.Port == 0 {
		d.Port = DefaultPort
	}
	return d
}

// validate checks d (with defaults applied) for a device of the family.
func (d Device) validate(v6 bool) error {
	var errs []error
	minMTU := 68
	if v6 {
		minMTU = 1280
	}
	if d.VNI < 1 || d.VNI > 1<<24-1 {
		errs = append(errs, fmt.Errorf("VNI %d out of range 1-%d", d.VNI, 1<<24-1))
	}
	if d.Port < 1 || d.Port > 65535 {
		errs = append(errs, fmt.Errorf("UDP port %d out of range", d.Port))
	}
	if d.MTU < minMTU || d.MTU > 65535 {
		errs = append(errs, fmt.Errorf("MTU %d out of range %d-65535", d.MTU, minMTU))
	}
	if err := validMAC(d.MAC); err != nil {
		errs = append(errs, err)
	}
	if !d.Local.IsValid() || d.Local.Is6() != v6 || d.Local.Is4In6() || d.Local.IsUnspecified() {
		errs = append(errs, fmt.Errorf("local address %q is not a usable %s address", d.Local, family(v6)))
	}
	if len(d.Parent) > 15 || strings.ContainsAny(d.Parent, "/ \t\n") {
		errs = append(errs, fmt.Errorf("parent interface name %q is invalid", d.Parent))
	}
	a := d.Addr.Addr()
	if !d.Addr.IsValid() || a.Is6() != v6 || a.Is4In6() || d.Addr.Bits() != a.BitLen() {
		errs = append(errs, fmt.Errorf("tunnel address %q is not an %s /%d", d.Addr, family(v6), bitLen(v6)))
	}
	return errors.Join(errs...)
}

// Peer is another host with a VTEP on the overlay.
type Peer struct {
	// Node names the peer in logs and errors.
	Node string
	// TunnelAddr is the address on the peer's device.
	TunnelAddr netip.Addr
	// MAC is the peer's VTEP MAC.
	MAC net.HardwareAddr
	// Underlay is where encapsulated packets for the peer are sent.
	Underlay netip.Addr
}

// String renders p, e.g. "node-b 10.244.0.2 lladdr 02:..:02 dst 192.0.2.2".
func (p Peer) String() string {
	return fmt.Sprintf("%s %s lladdr %s dst %s", p.Node, p.TunnelAddr, p.MAC, p.Underlay)
}

// validate checks p for an overlay of the family.
func (p Peer) validate(v6 bool) error {
	var errs []error
	if !p.TunnelAddr.IsValid() || p.TunnelAddr.Is6() != v6 || p.TunnelAddr.Is4In6() {
		errs = append(errs, fmt.Errorf("tunnel address %q is not an %s address", p.TunnelAddr, family(v6)))
	}
	if err := validMAC(p.MAC); err != nil {
		errs = append(errs, err)
	}
	if !p.Underlay.IsValid() || p.Underlay.Is6() != v6 || p.Underlay.Is4In6() || p.Underlay.IsUnspecified() {
		errs = append(errs, fmt.Errorf("underlay address %q is not a usable %s address", p.Underlay, family(v6)))
	}
	return errors.Join(errs...)
}

func validMAC(m net.HardwareAddr) error {
	if len(m) != 6 || m[0]&0x01 != 0 || [6]byte(m) == [6]byte{} {
		return fmt.Errorf("MAC %q is not a unicast Ethernet address", m)
	}
	return nil
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

func bitLen(v6 bool) int {
	if v6 {
		return 128
	}
	return 32
}

// KindVXLAN is Link.Kind of a VXLAN device.
const KindVXLAN = "vxlan"

// Link is a network interface as the reconciler sees it. The VXLAN fields
// are meaningful only when Kind is KindVXLAN.
type Link struct {
	Index    int
	Name     string
	Kind     string // rtnetlink kind, e.g. "vxlan", "veth"
	VNI      int
	Port     int
	Local    netip.Addr
	Parent   string // name of the underlay interface, "" for none
	Learning bool
	MTU      int
	MAC      string // lower-case, colon-separated
	Up       bool
}

// Neigh is a neighbour (ARP or NDP) entry on a link.
type Neigh struct {
	LinkIndex int
	IP        netip.Addr
	MAC       string // lower-case, colon-separated
	Permanent bool
}

// FDB is a forwarding-database entry of a VXLAN device (an AF_BRIDGE
// neighbour with NTF_SELF): frames for MAC are encapsulated to Dst.
type FDB struct {
	LinkIndex int
	MAC       string // lower-case, colon-separated
	Dst       netip.Addr
	Permanent bool
}

// LinkState is what a link carries: its addresses (IPv6 link-local ones
// included), neighbour entries (IPv4 and IPv6) and FDB entries.
type LinkState struct {
	Addrs  []netip.Prefix
	Neighs []Neigh
	FDB    []FDB
}

// Kernel is what the reconciler needs from the kernel. It only ever
// names links by name or by the index a lookup returned, so an
// implementation touches nothing the reconciler did not ask for.
// Implementations: Netlink and Fake.
type Kernel interface {
	// LinkByName returns the named link, or an error satisfying
	// IsLinkNotFound.
	LinkByName(name string) (Link, error)
	// ReadLink returns l's addresses, neighbour and FDB entries.
	ReadLink(l Link) (LinkState, error)
	// AddLink creates a VXLAN device with l's attributes (l.Index and
	// l.Up are ignored; it starts down) and returns it.
	AddLink(l Link) (Link, error)
	// DeleteLink deletes l with everything on it.
	DeleteLink(l Link) error
	SetLinkMTU(l Link, mtu int) error
	SetLinkMAC(l Link, mac string) error
	SetLinkUp(l Link) error
	// AddAddr adds (or replaces) an address on l; IPv6 addresses skip
	// duplicate address detection.
	AddAddr(l Link, p netip.Prefix) error
	// DeleteAddr removes an address from l; a missing one is not an
	// error.
	DeleteAddr(l Link, p netip.Prefix) error
	// SetNeigh adds n permanently or replaces the entry for n.IP.
	SetNeigh(n Neigh) error
	// DeleteNeigh removes n; a missing entry is not an error.
	DeleteNeigh(n Neigh) error
	// SetFDB adds e permanently or replaces the entry for e.MAC.
	SetFDB(e FDB) error
	// DeleteFDB removes e (its MAC towards its Dst); a missing entry is
	// not an error.
	DeleteFDB(e FDB) error
}

// errLinkNotFound says that an interface does not exist.
var errLinkNotFound = errors.New("link not found")

// LinkNotFound returns the error a Kernel returns for a missing link.
func LinkNotFound(name string) error {
	return fmt.Errorf("interface %q: %w", name, errLinkNotFound)
}

// IsLinkNotFound reports whether err says that an interface does not
// exist.
func IsLinkNotFound(err error) bool { return errors.Is(err, errLinkNotFound) }
