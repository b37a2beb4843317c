package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/calyx-net/calyx/internal/nlsafe"
)

// hostVethMAC is the host end's MAC, as the CNI plugin sets it: the
// container's IPv6 gateway (gateway6) is the link-local address the
// kernel derives from it.
const hostVethMAC = "ee:ee:ee:ee:ee:ee"

// dockerKernel is the kernel work of Docker's Join that libnetwork leaves
// to the driver: the CNI plugin's part of an attachment. The host side
// (routes, neighbours, sysctls, policy) stays the reconcile loop's.
type dockerKernel interface {
	// addVeth creates a veth pair in calyx-node's namespace: host, up,
	// with hostVethMAC, and peer (which libnetwork moves into the
	// sandbox) with peerMAC. A stale pair of that name is replaced.
	addVeth(host, peer string, peerMAC net.HardwareAddr, mtu int) error
	// gatewayNeighbours adds permanent neighbour entries for gws, at
	// hostVethMAC, on the interface with mac inside the namespace at
	// sandbox, once libnetwork has configured it and set it up. It
	// reports false when no such interface is ready there yet.
	gatewayNeighbours(sandbox string, mac net.HardwareAddr, gws []netip.Addr) (bool, error)
}

// netlinkDocker is dockerKernel over netlink in calyx-node's namespace.
type netlinkDocker struct{ h *netlink.Handle }

var _ dockerKernel = netlinkDocker{}

func (k netlinkDocker) addVeth(host, peer string, peerMAC net.HardwareAddr, mtu int) error {
	hostMAC, _ := net.ParseMAC(hostVethMAC)
	la := netlink.NewLinkAttrs()
	la.Name = host
	la.MTU = mtu
	la.HardwareAddr = hostMAC
	la.TxQLen = -1
	veth := &netlink.Veth{LinkAttrs: la, PeerName: peer, PeerHardwareAddr: peerMAC, PeerMTU: uint32(max(mtu, 0)), PeerTxQLen: -1}
	err := k.h.LinkAdd(veth)
	if errors.Is(err, syscall.EEXIST) {
		// Left by a Join that failed half-way, or by a calyx-node that
		// died in one: the names are the endpoint's own.
		for _, name := range []string{host, peer} {
			if l, lerr := k.h.LinkByName(name); lerr == nil {
				if derr := k.h.LinkDel(l); derr != nil {
					return fmt.Errorf("deleting stale %s: %w", name, derr)
				}
			}
		}
		err = k.h.LinkAdd(veth)
	}
	if err != nil {
		return fmt.Errorf("creating veth %s (host) / %s (for the container): %w", host, peer, err)
	}
	l, err := k.h.LinkByName(host)
	if err == nil {
		err = k.h.LinkSetUp(l)
	}
	if err != nil {
		_ = k.h.LinkDel(veth)
		return fmt.Errorf("setting %s up: %w", host, err)
	}
	return nil
}

func (netlinkDocker) gatewayNeighbours(sandbox string, mac net.HardwareAddr, gws []netip.Addr) (bool, error) {
	sb, err := netns.Open(sandbox)
	var notNS ns.NSPathNotNSErr
	if errors.Is(err, fs.ErrNotExist) || errors.As(err, &notNS) {
		// not created yet, or not yet mounted: dockerd creates the file,
		// then bind-mounts the namespace on it
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = sb.Close() }()
	h, err := sb.NewNetlinkHandle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	links, err := nlsafe.LinkList(h)
	if err != nil {
		return false, fmt.Errorf("listing the interfaces of %s: %w", sandbox, err)
	}
	var link netlink.Link
	for _, l := range links {
		// libnetwork moves the interface in, sets it down, renames and
		// configures it, then sets it up: only then may the entries be
		// added, as setting a link down flushes its neighbours, the
		// permanent ones too.
		if a := l.Attrs(); bytes.Equal(a.HardwareAddr, mac) && a.Flags&net.FlagUp != 0 && !strings.HasPrefix(a.Name, "tmp") {
			link = l
			break
		}
	}
	if link == nil {
		return false, nil
	}
	hostMAC, _ := net.ParseMAC(hostVethMAC)
	for _, gw := range gws {
		fam := netlink.FAMILY_V4
		if gw.Is6() {
			fam = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT, IP: gw.AsSlice(), HardwareAddr: hostMAC}
		if err := h.NeighSet(n); err != nil {
			return true, fmt.Errorf("adding the neighbour entry %s lladdr %s dev %s in %s: %w", gw, hostMAC, link.Attrs().Name, sandbox, err)
		}
	}
	return true, nil
}
