package cni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ifaFNoDAD is IFA_F_NODAD (linux/if_addr.h).
const ifaFNoDAD = 0x02

// netlinkKernel is the real kernel: netlink from the runtime's (host)
// namespace, and for the container side a netlink socket opened in the
// container's namespace through pkg/ns.
type netlinkKernel struct{}

var _ kernel = netlinkKernel{}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// withNetns runs f inside the namespace at path.
func withNetns(path string, f func() error) error {
	netns, err := ns.GetNS(path)
	if err != nil {
		return err
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error { return f() })
}

func (netlinkKernel) LinkExists(_ context.Context, netns, ifName string) (bool, error) {
	exists := false
	err := withNetns(netns, func() error {
		_, err := netlink.LinkByName(ifName)
		switch {
		case err == nil:
			exists = true
		case !isLinkNotFound(err):
			return fmt.Errorf("looking up %s: %w", ifName, err)
		}
		return nil
	})
	return exists, err
}

// Attach creates the veth pair and configures it: Create, then Configure.
func (k netlinkKernel) Attach(ctx context.Context, s vethSpec) (string, error) {
	if err := k.Create(ctx, s); err != nil {
		return "", err
	}
	s.TempHostIfName = ""
	return k.Configure(ctx, s)
}

// Create creates the veth pair with one RTM_NEWLINK sent from this (the
// host's) namespace: the host end here, up, and the container end
// directly in the container's namespace. Moving a device between
// namespaces afterwards would unregister and re-register it under the
// kernel's rtnl lock, which costs milliseconds and serialises every
// concurrent ADD on the host (Calico #7705, amazon-vpc-cni-k8s #3764).
// The container end gets s.MAC and both ends s.MTU (0: the kernel's
// default), which HostUp and ConfigureContainer correct should
// calyx-node answer others. A name in use, in either namespace, is an
// error that matches fs.ErrExist; nothing is deleted for it.
func (netlinkKernel) Create(_ context.Context, s vethSpec) error {
	netns, err := ns.GetNS(s.Netns)
	if err != nil {
		return &netnsError{path: s.Netns, err: err}
	}
	defer netns.Close()
	hostMAC, _ := net.ParseMAC(HostVethMAC)
	if _, err := newVeth(s, hostMAC, int(netns.Fd())).Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("creating veth %s (host) / %s (container): %w", s.HostIfName, s.IfName, err)
	}
	return nil
}

// newVeth is the RTM_NEWLINK request Create sends. It is built here
// rather than by netlink.LinkAdd, which looks the new link up by name
// afterwards: a second request, and a full parse of the link, for an
// index the plugin never uses. (The container end cannot be created up:
// the kernel opens it before the pair is joined, and refuses with
// ENOTCONN.)
func newVeth(s vethSpec, hostMAC net.HardwareAddr, netnsFd int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	host := nl.NewIfInfomsg(unix.AF_UNSPEC)
	host.Flags, host.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(host)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.HostIfName)))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, []byte(hostMAC)))
	if s.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(s.IfName))
	if s.MAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, []byte(s.MAC))
	}
	if s.MTU > 0 {
		peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(s.MTU)))
	}
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(netnsFd)))
	req.AddData(info)
	return req
}

// Configure brings the host end up and sets up the container side of a
// pair Create made: HostUp, then ConfigureContainer.
func (k netlinkKernel) Configure(ctx context.Context, s vethSpec) (string, error) {
	if err := k.HostUp(ctx, s); err != nil {
		return "", err
	}
	return k.ConfigureContainer(ctx, s)
}

// HostUp finishes the host end of a pair Create made as calyx-node
// answered: its name, when Create gave it another (s.TempHostIfName), and
// its MTU. Create set it up. On error it deletes the pair.
func (netlinkKernel) HostUp(_ context.Context, s vethSpec) error {
	if s.TempHostIfName != "" && s.TempHostIfName != s.HostIfName {
		if err := renameHostEnd(s.TempHostIfName, s.HostIfName); err != nil {
			if derr := deleteLink(s.TempHostIfName); derr != nil {
				err = errors.Join(err, fmt.Errorf("deleting %s: %w", s.TempHostIfName, derr))
			}
			return err
		}
	}
	err := hostUp(s)
	if err != nil {
		if derr := deleteLink(s.HostIfName); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting %s: %w", s.HostIfName, derr))
		}
	}
	return err
}

// ConfigureContainer sets up the container side of a pair Create made:
// the MTU and MAC s names when the container end has others, the link up,
// then addresses, gateway neighbours and routes. It returns the container
// end's MAC. On error it deletes the pair.
func (netlinkKernel) ConfigureContainer(_ context.Context, s vethSpec) (string, error) {
	mac, err := containerSide(s)
	if err != nil {
		if derr := deleteLink(s.HostIfName); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting %s: %w", s.HostIfName, derr))
		}
		return "", err
	}
	return mac, nil
}

// renameHostEnd gives the host end Create made under another name (temp)
// the name calyx-node answered: an endpoint an older calyx-node named
// otherwise.
func renameHostEnd(temp, name string) error {
	l, err := netlink.LinkByName(temp)
	if err != nil {
		return fmt.Errorf("finding %s: %w", temp, err)
	}
	// The kernel renames only links that are down; hostUp sets it up.
	if err := netlink.LinkSetDown(l); err != nil {
		return fmt.Errorf("setting %s down to rename it: %w", temp, err)
	}
	if err := netlink.LinkSetName(l, name); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", temp, name, err)
	}
	return nil
}

// hostUp sets the host end's MTU and brings it up.
func hostUp(s vethSpec) error {
	host, err := netlink.LinkByName(s.HostIfName)
	if err != nil {
		return fmt.Errorf("finding %s: %w", s.HostIfName, err)
	}
	if s.MTU > 0 && host.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(host, s.MTU); err != nil {
			return fmt.Errorf("setting the MTU of %s to %d: %w", s.HostIfName, s.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("setting %s up: %w", s.HostIfName, err)
	}
	return nil
}

// containerSide sets up the container side; the host end is up. One
// switch into the container's namespace opens a netlink socket there (and
// enables IPv6, a sysctl); every request then goes through that socket
// from here, rather than each running on a thread switched into the
// namespace with a socket of its own.
func containerSide(s vethSpec) (string, error) {
	has4, has6 := false, false
	for _, p := range s.IPs {
		has4 = has4 || p.Addr().Is4()
		has6 = has6 || p.Addr().Is6()
	}
	var h *netlink.Handle
	var link netlink.Link
	err := withNetns(s.Netns, func() error {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("opening a netlink socket in %s: %w", s.Netns, err)
		}
		if link, err = h.LinkByName(s.IfName); err != nil {
			return fmt.Errorf("finding %s in the container: %w", s.IfName, err)
		}
		if has6 {
			// Runtimes may create namespaces with IPv6 off by default.
			f := filepath.Join("/proc/sys/net/ipv6/conf", s.IfName, "disable_ipv6")
			if err := os.WriteFile(f, []byte("0"), 0o644); err != nil {
				return fmt.Errorf("enabling IPv6 on %s: %w", s.IfName, err)
			}
		}
		return nil
	})
	if h != nil {
		defer h.Close()
	}
	if err != nil {
		return "", err
	}
	// As netlink's own one-request sockets: no request waits for ever.
	if err := h.SetSocketTimeout(time.Duration(nl.SocketTimeoutTv.Sec) * time.Second); err != nil {
		return "", fmt.Errorf("setting a timeout on the netlink socket in %s: %w", s.Netns, err)
	}
	if s.MTU > 0 && link.Attrs().MTU != s.MTU {
		if err := h.LinkSetMTU(link, s.MTU); err != nil {
			return "", fmt.Errorf("setting the MTU of %s to %d: %w", s.IfName, s.MTU, err)
		}
	}
	if s.MAC != nil && !bytes.Equal(link.Attrs().HardwareAddr, s.MAC) {
		if err := h.LinkSetHardwareAddr(link, s.MAC); err != nil {
			return "", fmt.Errorf("setting the MAC of %s to %s: %w", s.IfName, s.MAC, err)
		}
		if link, err = h.LinkByName(s.IfName); err != nil {
			return "", fmt.Errorf("finding %s in the container: %w", s.IfName, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return "", fmt.Errorf("setting %s up in the container: %w", s.IfName, err)
		}
	}
	hostMAC, _ := net.ParseMAC(HostVethMAC) // as Create made it
	if err := configureContainer(h, link, s, hostMAC, has4, has6); err != nil {
		return "", err
	}
	return link.Attrs().HardwareAddr.String(), nil
}

// configureContainer adds the container's addresses, gateway neighbours
// and routes through h, a socket in its namespace. hostMAC is the host
// end's MAC.
func configureContainer(h *netlink.Handle, link netlink.Link, s vethSpec, hostMAC net.HardwareAddr, has4, has6 bool) error {
	idx := link.Attrs().Index
	for _, p := range s.IPs {
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			// No duplicate address detection: the address is ours alone,
			// and DAD would hold it "tentative" for a second or more.
			a.Flags = ifaFNoDAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, s.IfName, err)
		}
	}
	for _, gw := range gateways(s, has4, has6) {
		if err := h.NeighSet(gatewayNeigh(idx, gw, hostMAC)); err != nil {
			return fmt.Errorf("adding the neighbour entry %s lladdr %s dev %s: %w", gw, hostMAC, s.IfName, err)
		}
	}
	var routes []*netlink.Route
	if has4 {
		routes = append(routes, gatewayRoutes(idx, s.Gateway4)...)
	}
	if has6 && s.Gateway6.IsValid() {
		routes = append(routes, gatewayRoutes(idx, s.Gateway6)...)
	}
	for _, r := range routes {
		r.Priority = routeMetric(s.IfName, r, 0)
		err := h.RouteAdd(r)
		if errors.Is(err, syscall.EEXIST) {
			// Another interface of this container holds the same route at
			// this metric; this one becomes a backup.
			r.Priority = routeMetric(s.IfName, r, 100+idx)
			err = h.RouteAdd(r)
		}
		if err != nil {
			desc := r.Dst.String()
			if r.Gw != nil {
				desc += " via " + r.Gw.String()
			}
			return fmt.Errorf("adding route %s dev %s: %w", desc, s.IfName, err)
		}
	}
	return nil
}

// routeMetric is the metric of a container route on ifName. A container
// on several Calyx networks (Mesos: eth0, eth1, ... in the order the task
// lists its networks) has the same gateway and default route on each
// interface; the kernel refuses duplicates, so they differ in metric: the
// N of ethN, plus extra, so that the first network's interface carries the
// default route whichever ADD ran first. IPv6 metrics start at the
// kernel's default of 1024.
func routeMetric(ifName string, r *netlink.Route, extra int) int {
	n := len(ifName)
	for n > 0 && ifName[n-1] >= '0' && ifName[n-1] <= '9' {
		n--
	}
	m, err := strconv.Atoi(ifName[n:])
	if err != nil || m > 1000 {
		m = 0
	}
	m += extra
	if r.Dst != nil && r.Dst.IP.To4() == nil {
		m += 1024
	}
	return m
}

// gateways are the next hops the container routes via.
func gateways(s vethSpec, has4, has6 bool) []netip.Addr {
	var out []netip.Addr
	if has4 && s.Gateway4.IsValid() {
		out = append(out, s.Gateway4)
	}
	if has6 && s.Gateway6.IsValid() {
		out = append(out, s.Gateway6)
	}
	return out
}

// gatewayNeigh is the container's permanent neighbour entry for a
// gateway: the host end's MAC. Without it the container resolves the
// gateway by ARP (or NDP), and the host answers 169.254.1.1 by proxy ARP
// only when its own routing table has a route to that address through
// another interface: on a host with no default route (an air-gapped one)
// the entry stays FAILED and the container reaches nothing, not even its
// neighbours on the same host. The entry makes the gateway independent of
// the host's routes; the host still routes every packet by its /32 and
// /128 routes to the containers.
func gatewayNeigh(idx int, gw netip.Addr, hostMAC net.HardwareAddr) *netlink.Neigh {
	fam := netlink.FAMILY_V4
	if gw.Is6() {
		fam = netlink.FAMILY_V6
	}
	return &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: net.IP(gw.AsSlice()), HardwareAddr: hostMAC}
}

// gatewayRoutes are the link route to the gateway (unless it is
// link-local IPv6, which needs none) and the default route via it.
func gatewayRoutes(idx int, gw netip.Addr) []*netlink.Route {
	var out []*netlink.Route
	if !gw.Is6() || !gw.IsLinkLocalUnicast() {
		out = append(out, &netlink.Route{LinkIndex: idx, Scope: netlink.SCOPE_LINK, Dst: ipNet(netip.PrefixFrom(gw, gw.BitLen()))})
	}
	zero := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		zero = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return append(out, &netlink.Route{LinkIndex: idx, Dst: ipNet(zero), Gw: net.IP(gw.AsSlice())})
}

func ipNet(p netip.Prefix) *net.IPNet {
	n := prefixNet(p)
	return &n
}

// deleteLink deletes the named link in the current namespace; missing is
// not an error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	return nil
}

func (netlinkKernel) Detach(_ context.Context, netns, ifName, hostIfName string) error {
	var errs []error
	if hostIfName != "" {
		if err := deleteLink(hostIfName); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", hostIfName, err))
		}
	}
	if netns != "" && ifName != "" {
		err := withNetns(netns, func() error {
			l, err := netlink.LinkByName(ifName)
			if isLinkNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if l.Type() != "veth" {
				// Not one calyx made: leave it to whoever did.
				return nil
			}
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
				return err
			}
			return nil
		})
		var notExist ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		if err != nil && !errors.As(err, &notExist) && !errors.As(err, &notNS) {
			errs = append(errs, fmt.Errorf("deleting %s in %s: %w", ifName, netns, err))
		}
	}
	return errors.Join(errs...)
}
