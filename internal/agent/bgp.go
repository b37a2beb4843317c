package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/bgp"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/localapi"
)

// bgpRunner runs the BGP speaker calc asks for. The reconcile loop hands
// it calc's desired speaker (set); the runner starts a speaker, and
// starts a new one when the identity (router ID, AS, cluster ID, port)
// changes, applying the peers and paths to whichever runs. Learned best
// paths wake the loop (through learned), which reads them with routes and
// installs them like its other routes: the speaker never touches the
// kernel.
type bgpRunner struct {
	log     *slog.Logger
	gr      time.Duration // graceful restart time advertised
	want    chan *calc.BGP
	learned func() // wakes the reconcile loop

	mu sync.Mutex // guards sp
	sp *bgp.Speaker
}

func newBGPRunner(log *slog.Logger, gr time.Duration, learned func()) *bgpRunner {
	return &bgpRunner{log: log, gr: gr, want: make(chan *calc.BGP, 1), learned: learned}
}

// set hands the runner a new desired speaker (nil: none); the newest wins.
func (b *bgpRunner) set(d *calc.BGP) {
	for {
		select {
		case b.want <- d:
			return
		default:
		}
		select {
		case <-b.want:
		default:
		}
	}
}

// speakerConfig is the part of the desired speaker a running one cannot
// change. Pure.
func speakerConfig(d *calc.BGP, gr time.Duration) bgp.Config {
	cfg := bgp.Config{RouterID: d.RouterID, ASN: d.ASN, ListenPort: d.ListenPort, GracefulRestartTime: gr}
	cfg.ListenAddrs = []netip.Addr{d.RouterID}
	if d.IPv6.IsValid() {
		cfg.ListenAddrs = append(cfg.ListenAddrs, d.IPv6)
	}
	if id, err := netip.ParseAddr(d.ClusterID); err == nil && id.Is4() {
		cfg.ClusterID = id
	}
	return cfg
}

// speakerPeers and speakerPaths translate calc's peers and paths. Pure.
func speakerPeers(d *calc.BGP) []bgp.Peer {
	out := make([]bgp.Peer, 0, len(d.Peers))
	for _, p := range d.Peers {
		name := p.Name
		if p.Node != "" {
			name += ":" + p.Node
		}
		out = append(out, bgp.Peer{Name: name, Addr: p.Addr, ASN: p.ASN, RouteReflectorClient: p.RRClient})
	}
	return out
}

func speakerPaths(d *calc.BGP) []bgp.Path {
	out := make([]bgp.Path, 0, len(d.Paths))
	for _, p := range d.Paths {
		nh := d.RouterID
		if p.Addr().Is6() {
			if !d.IPv6.IsValid() {
				continue // no IPv6 address to be reached at
			}
			nh = d.IPv6
		}
		out = append(out, bgp.Path{Prefix: p, NextHop: nh})
	}
	return out
}

// running is one started speaker.
type running struct {
	sp     *bgp.Speaker
	sub    <-chan struct{} // best-path changes
	cfg    bgp.Config
	cancel context.CancelFunc
	done   chan error
}

// start starts a speaker with cfg.
func (b *bgpRunner) start(ctx context.Context, cfg bgp.Config) (*running, error) {
	sp, err := bgp.New(cfg, b.log)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	r := &running{sp: sp, sub: sp.Subscribe(), cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sp.Run(sctx) }()
	b.mu.Lock()
	b.sp = sp
	b.mu.Unlock()
	b.log.Info("BGP speaker started", "routerID", cfg.RouterID, "as", cfg.ASN, "port", cfg.ListenPort)
	return r, nil
}

// stop stops a started speaker (nil: none) and waits for it.
func (b *bgpRunner) stop(ctx context.Context, r *running) {
	if r == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil && ctx.Err() == nil {
		b.log.Warn("the BGP speaker stopped", "err", err)
	}
	b.mu.Lock()
	b.sp = nil
	b.mu.Unlock()
	b.learned()
}

// run serves until ctx ends.
func (b *bgpRunner) run(ctx context.Context) error {
	var cur *running
	defer func() { b.stop(ctx, cur) }()
	for {
		var sub <-chan struct{}
		if cur != nil {
			sub = cur.sub
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub:
			b.learned()
		case d := <-b.want:
			if d == nil {
				if cur != nil {
					b.log.Info("BGP off: stopping the speaker")
					b.stop(ctx, cur)
					cur = nil
				}
				continue
			}
			next := speakerConfig(d, b.gr)
			if cur == nil || !reflect.DeepEqual(next, cur.cfg) {
				if cur != nil {
					b.log.Info("BGP identity changed: starting a new speaker", "routerID", next.RouterID, "as", next.ASN)
					b.stop(ctx, cur)
					cur = nil
				}
				r, err := b.start(ctx, next)
				if err != nil {
					b.log.Error("BGP speaker settings refused", "err", err)
					continue
				}
				cur = r
			}
			if err := cur.sp.SetPeers(ctx, speakerPeers(d)); err != nil {
				b.log.Error("BGP peers refused", "err", err)
			}
			if err := cur.sp.SetPaths(ctx, speakerPaths(d)); err != nil {
				b.log.Error("BGP paths refused", "err", err)
			}
		}
	}
}

// routes returns the learned best paths to install: those whose next hop
// is on one of this node's subnets (a path to elsewhere would need a
// recursive lookup the kernel does not do for us), as routes of proto 80.
func (b *bgpRunner) routes(subnets []netip.Prefix) []route.RemoteRoute {
	var out []route.RemoteRoute
	for _, r := range b.usable(subnets) {
		out = append(out, route.RemoteRoute{Dst: r.Prefix, Gw: r.NextHop})
	}
	return out
}

// usable returns the learned best paths whose next hop is on one of the
// subnets.
func (b *bgpRunner) usable(subnets []netip.Prefix) []bgp.Route {
	b.mu.Lock()
	sp := b.sp
	b.mu.Unlock()
	if sp == nil {
		return nil
	}
	var out []bgp.Route
	for _, r := range sp.Routes() {
		for _, s := range subnets {
			if s.Contains(r.NextHop) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// status returns the sessions for calyxctl node status.
func (b *bgpRunner) status(ctx context.Context) ([]localapi.BGPPeerState, error) {
	b.mu.Lock()
	sp := b.sp
	b.mu.Unlock()
	if sp == nil {
		return nil, nil
	}
	st, err := sp.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading BGP sessions: %w", err)
	}
	out := make([]localapi.BGPPeerState, 0, len(st))
	for _, p := range st {
		out = append(out, localapi.BGPPeerState{
			Peer: p.Name + " " + p.Addr.String(), Type: string(p.Type), State: p.State,
			Since: p.Since, Received: p.Received, Advertised: p.Advertised,
		})
	}
	return out, nil
}
