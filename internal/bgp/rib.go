package bgp

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// rib is Calyx's view of GoBGP's best paths: the routes learned from
// peers, kept up to date from GoBGP's best-path and peer-state events
// (never by polling), plus the subscribers to tell when it changes. Its
// methods are the watch callbacks, so it is tested by feeding them
// events.
type rib struct {
	mu     sync.Mutex // guards following fields
	routes map[netip.Prefix]learned
	up     map[netip.Addr]bool   // peers whose session is established
	names  map[netip.Addr]string // Peer.Name by address
	subs   []chan struct{}
}

// learned is one best path from a peer.
type learned struct {
	nextHop netip.Addr
	from    netip.Addr // the neighbour it came from
	stale   bool       // GoBGP marked it stale (graceful restart)
}

func newRIB() *rib {
	return &rib{
		routes: make(map[netip.Prefix]learned),
		up:     make(map[netip.Addr]bool),
		names:  make(map[netip.Addr]string),
	}
}

// onBestPath applies a best-path event: a new best path from a peer
// replaces the route, a withdrawal or a best path of our own removes it.
func (r *rib) onBestPath(paths []*apiutil.Path, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, p := range paths {
		prefix, ok := prefixOf(p)
		if !ok {
			continue
		}
		old, had := r.routes[prefix]
		if p.Withdrawal || !p.PeerAddress.IsValid() {
			if had {
				delete(r.routes, prefix)
				changed = true
			}
			continue
		}
		l := learned{nextHop: nextHopOf(p), from: p.PeerAddress.Unmap(), stale: p.Stale}
		if !had || old != l {
			r.routes[prefix] = l
			changed = true
		}
	}
	if changed {
		r.notifyLocked()
	}
}

// onPeer tracks which sessions are established: a route from a peer
// whose session is down is held only by graceful restart, so it is
// stale whatever GoBGP's flag says.
func (r *rib) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_INIT && ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.Conf.NeighborAddress
	}
	addr = addr.Unmap()
	up := ev.Peer.State.SessionState == bgp.BGP_FSM_ESTABLISHED
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.up[addr] == up {
		return
	}
	if up {
		r.up[addr] = true
	} else {
		delete(r.up, addr)
	}
	for _, l := range r.routes {
		if l.from == addr {
			r.notifyLocked()
			break
		}
	}
}

func (r *rib) setNames(names map[netip.Addr]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = names
}

// list returns the learned routes sorted by prefix.
func (r *rib) list() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Route, 0, len(r.routes))
	for prefix, l := range r.routes {
		name := r.names[l.from]
		if name == "" {
			name = l.from.String()
		}
		out = append(out, Route{
			Prefix:  prefix,
			NextHop: l.nextHop,
			Peer:    name,
			Stale:   l.stale || !r.up[l.from],
		})
	}
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// subscribe returns a channel that receives a value after the routes
// change. It holds at most one pending value: a slow reader sees one
// wake-up for many changes and reads the current routes then.
func (r *rib) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, ch)
	return ch
}

func (r *rib) notifyLocked() {
	for _, ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
