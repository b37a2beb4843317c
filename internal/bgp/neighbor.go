package bgp

import (
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
)

// families are the address families of every session: a node's IPv4 and
// IPv6 blocks both travel over whichever session it has with a peer.
var families = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// neighbors maps Calyx's desired peers to GoBGP neighbour configs, keyed
// by address (GoBGP's own key for a neighbour). It is pure, so the whole
// mapping is tested without a server; the speaker diffs its result
// against what the server holds.
func neighbors(cfg Config, peers []Peer) (map[netip.Addr]*api.Peer, error) {
	out := make(map[netip.Addr]*api.Peer, len(peers))
	var errs []error
	for _, p := range peers {
		n, err := neighbor(cfg, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := out[p.Addr]; dup {
			errs = append(errs, fmt.Errorf("peer %s: address %s used by two peers", p.Name, p.Addr))
			continue
		}
		out[p.Addr] = n
	}
	return out, errors.Join(errs...)
}

// neighbor is one peer's GoBGP config: graceful restart with the
// notification bit for both families, and the reflector and transport
// settings the Peer asks for.
func neighbor(cfg Config, p Peer) (*api.Peer, error) {
	switch {
	case !p.Addr.IsValid():
		return nil, fmt.Errorf("peer %s: invalid address", p.Name)
	case p.Addr.Zone() != "":
		return nil, fmt.Errorf("peer %s: zoned address %s not supported", p.Name, p.Addr)
	case p.ASN == 0:
		return nil, fmt.Errorf("peer %s: ASN must not be 0", p.Name)
	case p.Port < 0 || p.Port > 65535:
		return nil, fmt.Errorf("peer %s: port %d out of range", p.Name, p.Port)
	case p.RouteReflectorClient && p.ASN != cfg.ASN:
		return nil, fmt.Errorf("peer %s: a route reflector client must be iBGP (AS %d, ours %d)", p.Name, p.ASN, cfg.ASN)
	}
	addr := p.Addr.Unmap()
	n := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: addr.String(),
			PeerAsn:         p.ASN,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry: uint64(DefaultConnectRetry.Seconds()),
		}},
		Transport: &api.Transport{
			PassiveMode: p.Passive,
			RemotePort:  uint32(p.Port),
		},
		// RFC 4724 graceful restart, with the RFC 8538 notification bit
		// so that a hold-timer expiry or a NOTIFICATION (other than a
		// hard reset) also keeps routes. Long-lived GR (RFC 9494) is left
		// off: it would keep a dead peer's routes after the restart time,
		// and Calyx wants them gone then.
		GracefulRestart: &api.GracefulRestart{
			Enabled:             true,
			RestartTime:         uint32(cfg.GracefulRestartTime.Seconds()),
			NotificationEnabled: true,
		},
	}
	if src := sourceAddr(cfg.ListenAddrs, addr); src.IsValid() {
		n.Transport.LocalAddress = src.String()
	}
	if p.RouteReflectorClient {
		id := cfg.ClusterID
		if !id.IsValid() {
			id = cfg.RouterID
		}
		n.RouteReflector = &api.RouteReflector{
			RouteReflectorClient:    true,
			RouteReflectorClusterId: id.String(),
		}
	}
	for _, f := range families {
		n.AfiSafis = append(n.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		})
	}
	return n, nil
}

// sourceAddr is the first listen address of addr's family, or the zero
// Addr if there is none (the kernel then picks the source).
func sourceAddr(listen []netip.Addr, addr netip.Addr) netip.Addr {
	for _, l := range listen {
		l = l.Unmap()
		if l.Is4() == addr.Is4() && !l.IsUnspecified() {
			return l
		}
	}
	return netip.Addr{}
}

// peerType is iBGP when the peer shares our AS.
func peerType(ours, theirs uint32) PeerType {
	if ours == theirs {
		return IBGP
	}
	return EBGP
}
