package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"
)

// Speaker is an in-process BGP speaker: it advertises the paths it is
// given to the peers it is given, and reports the best routes it learns.
// It writes nothing to the kernel. SetPeers and SetPaths may be called
// before, during and after Run; Run applies the latest desired state.
type Speaker struct {
	cfg     Config
	log     *slog.Logger
	rib     *rib
	ready   chan struct{} // closed once Run has started the server
	started atomic.Bool   // Run was called

	mu        sync.Mutex // guards following fields; held while changing the server
	srv       *server.BgpServer
	wantPeers map[netip.Addr]*api.Peer
	havePeers map[netip.Addr]*api.Peer // what srv holds
	wantPaths map[netip.Prefix]Path
	havePaths map[netip.Prefix]Path // what srv holds
}

// New validates cfg and returns a Speaker that does nothing until Run.
func New(cfg Config, log *slog.Logger) (*Speaker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bgp config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Speaker{
		cfg:       cfg,
		log:       log,
		rib:       newRIB(),
		ready:     make(chan struct{}),
		wantPeers: map[netip.Addr]*api.Peer{},
		wantPaths: map[netip.Prefix]Path{},
	}, nil
}

// Run starts the GoBGP server, applies the desired peers and paths, and
// serves until ctx is done. It then stops the server without sending
// NOTIFICATIONs, so that peers treat the stop as a graceful restart and
// keep this node's routes for Config.GracefulRestartTime (call
// SetPeers(nil) first to withdraw them at once). Run may be called once;
// it returns when every server goroutine has stopped.
func (s *Speaker) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("bgp speaker: Run called twice")
	}
	srv := server.NewBgpServer(server.LoggerOption(gobgpLogger(s.log), nil))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve()
	}()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: s.global()}); err != nil {
		srv.Stop()
		<-served
		return fmt.Errorf("starting bgp server: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{
		OnBestPath:   s.rib.onBestPath,
		OnPeerUpdate: s.rib.onPeer,
	}, server.WatchBestPath(true), server.WatchPeer())
	if err != nil {
		srv.Stop()
		<-served
		return fmt.Errorf("watching bgp events: %w", err)
	}

	s.mu.Lock()
	s.srv = srv
	s.havePeers = map[netip.Addr]*api.Peer{}
	s.havePaths = map[netip.Prefix]Path{}
	if err := errors.Join(s.syncPeersLocked(ctx), s.syncPathsLocked()); err != nil {
		// The next SetPeers or SetPaths retries what failed.
		s.log.Warn("applying desired bgp state", "err", err)
	}
	s.mu.Unlock()
	close(s.ready)
	s.log.Info("bgp speaker running", "routerID", s.cfg.RouterID, "asn", s.cfg.ASN, "port", s.cfg.ListenPort)

	<-ctx.Done()

	s.mu.Lock()
	s.srv, s.havePeers, s.havePaths = nil, nil, nil
	s.mu.Unlock()
	stopWatch()
	err = srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true})
	<-served
	// Stop's own StopBgp finds the server stopped (and says so, which
	// gobgpLogger mutes); what it adds is stopping the BFD server that
	// NewBgpServer started.
	srv.Stop()
	if err != nil {
		return fmt.Errorf("stopping bgp server: %w", err)
	}
	s.log.Info("bgp speaker stopped")
	return nil
}

// gobgpLogger is the logger handed to GoBGP: s.log, less the error
// GoBGP's Stop logs when StopBgp has already stopped the server.
func gobgpLogger(log *slog.Logger) *slog.Logger {
	return slog.New(muteStopError{log.With("subsystem", "gobgp").Handler()})
}

type muteStopError struct{ slog.Handler }

func (h muteStopError) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to stop BGP server" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h muteStopError) WithAttrs(attrs []slog.Attr) slog.Handler {
	return muteStopError{h.Handler.WithAttrs(attrs)}
}

func (h muteStopError) WithGroup(name string) slog.Handler {
	return muteStopError{h.Handler.WithGroup(name)}
}

// Ready is closed once Run has started the server and applied the
// desired state as it stood then.
func (s *Speaker) Ready() <-chan struct{} { return s.ready }

// global is the server's own config: both unicast families and the
// listen addresses.
func (s *Speaker) global() *api.Global {
	g := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: int32(s.cfg.ListenPort),
	}
	if s.cfg.ListenPort < 0 {
		g.ListenPort = -1
	}
	for _, a := range s.cfg.ListenAddrs {
		g.ListenAddresses = append(g.ListenAddresses, a.Unmap().String())
	}
	return g
}

// SetPeers makes the speaker's neighbours exactly peers: it adds the new
// ones, removes the missing ones (closing their sessions with a
// NOTIFICATION, so they drop this node's routes at once) and re-creates
// those whose settings changed. It is idempotent. An invalid peer list is
// rejected whole, leaving the previous one in place.
func (s *Speaker) SetPeers(ctx context.Context, peers []Peer) error {
	want, err := neighbors(s.cfg, peers)
	if err != nil {
		return fmt.Errorf("setting bgp peers: %w", err)
	}
	names := make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		names[p.Addr.Unmap()] = p.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantPeers = want
	s.rib.setNames(names)
	if err := s.syncPeersLocked(ctx); err != nil {
		return fmt.Errorf("setting bgp peers: %w", err)
	}
	return nil
}

func (s *Speaker) syncPeersLocked(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	var errs []error
	for addr, have := range s.havePeers {
		if want, ok := s.wantPeers[addr]; ok && proto.Equal(want, have) {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("deleting peer %s: %w", addr, err))
			continue
		}
		delete(s.havePeers, addr)
		s.log.Info("bgp peer removed", "addr", addr, "name", have.GetConf().GetDescription())
	}
	for addr, want := range s.wantPeers {
		if _, ok := s.havePeers[addr]; ok {
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: want}); err != nil {
			errs = append(errs, fmt.Errorf("adding peer %s: %w", addr, err))
			continue
		}
		s.havePeers[addr] = want
		s.log.Info("bgp peer added", "addr", addr, "name", want.GetConf().GetDescription(), "asn", want.GetConf().GetPeerAsn())
	}
	return errors.Join(errs...)
}

// SetPaths makes the speaker originate exactly paths: it advertises the
// new and changed ones and withdraws the missing ones. It is idempotent.
// An invalid path list is rejected whole.
func (s *Speaker) SetPaths(_ context.Context, paths []Path) error {
	want := make(map[netip.Prefix]Path, len(paths))
	var errs []error
	for _, p := range paths {
		if err := validPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		p.Prefix = p.Prefix.Masked()
		p.NextHop = p.NextHop.Unmap()
		if _, dup := want[p.Prefix]; dup {
			errs = append(errs, fmt.Errorf("path %s: given twice", p.Prefix))
		}
		want[p.Prefix] = p
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("setting bgp paths: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantPaths = want
	if err := s.syncPathsLocked(); err != nil {
		return fmt.Errorf("setting bgp paths: %w", err)
	}
	return nil
}

// syncPathsLocked withdraws, then advertises, in one GoBGP call each.
// GoBGP's AddPath and DeletePath take no context.
func (s *Speaker) syncPathsLocked() error {
	if s.srv == nil {
		return nil
	}
	var del []*apiutil.Path
	var delPrefixes []netip.Prefix
	for prefix, have := range s.havePaths {
		if _, ok := s.wantPaths[prefix]; ok {
			continue // a changed path replaces the old one below
		}
		p, err := apiPath(have, true)
		if err != nil {
			return err
		}
		del = append(del, p)
		delPrefixes = append(delPrefixes, prefix)
	}
	var errs []error
	if len(del) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %d paths: %w", len(del), err))
		} else {
			for _, prefix := range delPrefixes {
				delete(s.havePaths, prefix)
			}
		}
	}
	var add []*apiutil.Path
	var addPaths []Path
	for prefix, want := range s.wantPaths {
		if have, ok := s.havePaths[prefix]; ok && have == want {
			continue
		}
		p, err := apiPath(want, false)
		if err != nil {
			return err
		}
		add = append(add, p)
		addPaths = append(addPaths, want)
	}
	if len(add) > 0 {
		resps, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add})
		if err != nil {
			errs = append(errs, fmt.Errorf("advertising %d paths: %w", len(add), err))
		}
		for i, r := range resps {
			if r.Error == nil {
				s.havePaths[addPaths[i].Prefix] = addPaths[i]
			}
		}
	}
	return errors.Join(errs...)
}

// Routes returns the best routes learned from peers, sorted by prefix;
// paths this speaker originates are not included. It keeps its last
// value after Run returns.
func (s *Speaker) Routes() []Route { return s.rib.list() }

// Subscribe returns a channel that receives a value whenever Routes may
// have changed (a best path came, went or changed next hop, or a peer
// holding routes went up or down). Many changes may fold into one
// value; the reader then calls Routes.
func (s *Speaker) Subscribe() <-chan struct{} { return s.rib.subscribe() }

// Status returns the state of every session, sorted by name and address.
func (s *Speaker) Status(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []PeerStatus
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		out = append(out, peerStatus(s.cfg.ASN, p))
	})
	if err != nil {
		return nil, fmt.Errorf("listing bgp peers: %w", err)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), a.Addr.Compare(b.Addr))
	})
	return out, nil
}

// peerStatus condenses GoBGP's view of a neighbour.
func peerStatus(ourASN uint32, p *api.Peer) PeerStatus {
	st := PeerStatus{
		Name:  p.GetConf().GetDescription(),
		ASN:   p.GetConf().GetPeerAsn(),
		State: sessionState(p.GetState().GetSessionState()),
	}
	st.Type = peerType(ourASN, st.ASN)
	if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
		st.Addr = a
	}
	ts := p.GetTimers().GetState().GetDowntime()
	if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
		ts = p.GetTimers().GetState().GetUptime()
	}
	if ts != nil && ts.GetSeconds() > 0 {
		st.Since = ts.AsTime()
	}
	for _, af := range p.GetAfiSafis() {
		st.Received += int(af.GetState().GetReceived())
		st.Advertised += int(af.GetState().GetAdvertised())
	}
	return st
}

// sessionState names a BGP FSM state as BIRD and RFC 4271 do.
func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE, api.PeerState_SESSION_STATE_UNSPECIFIED:
		return "Idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "Connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "Active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "OpenSent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "Established"
	}
	return s.String()
}
