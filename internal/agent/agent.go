package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/bgp"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/dataplane/vxlan"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/docker"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/calyx-net/calyx/internal/netns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// DefaultDataDir is where calyx-node keeps its state, the embedded etcd's
// data (under etcd/) and certificates (under etcd-pki/) among it.
const DefaultDataDir = "/var/lib/calyx"

// Defaults of Config's optional fields.
const (
	DefaultMTU            = 1500
	DefaultResyncInterval = 90 * time.Second
	DefaultGCGrace        = 60 * time.Second
)

// Config is calyx-node's settings. The zero value of every optional field
// is a sensible default.
type Config struct {
	// NodeName names this host's Node resource. Required.
	NodeName string
	// NodeIPv4 is the host's address with prefix, e.g. 10.0.0.5/24,
	// recorded as the Node's spec.bgp.ipv4Address. Empty: detected from
	// the interface of the default route in the network namespace.
	NodeIPv4 string
	// NodeIPv6 is the host's IPv6 address with prefix, recorded as the
	// Node's spec.bgp.ipv6Address (IPv6 routing between hosts uses it).
	// Empty: detected from the IPv6 default route's interface, if any.
	NodeIPv6 string
	// ASNumber is this node's BGP AS number; empty means the cluster's.
	ASNumber string
	// NoBGP turns the BGP speaker off (--bgp=false): routes to other
	// hosts on this host's subnet are then programmed straight from the
	// block affinities, and nothing is advertised or learned.
	NoBGP bool
	// BGPGracefulRestart is the graceful restart time the speaker
	// advertises and for which routes learned before a restart are
	// kept; 0 means bgp.DefaultGracefulRestartTime.
	BGPGracefulRestart time.Duration
	// Etcd names an external etcd. With no endpoints, calyx-node runs an
	// embedded single-member etcd under DataDir, serving only TLS with
	// client certificates from DataDir/etcd-pki (created on first start).
	Etcd datastore.Config
	// DataDir holds calyx-node's state; default DefaultDataDir.
	DataDir string
	// EmbeddedClientURL and EmbeddedPeerURL are where the embedded etcd
	// listens (https:// only); defaults https://127.0.0.1:2379 and
	// https://127.0.0.1:2380.
	EmbeddedClientURL, EmbeddedPeerURL string
	// Socket is the local API's unix socket; default
	// localapi.DefaultSocket.
	Socket string
	// MetricsAddr is where /metrics, /healthz and /readyz are served over
	// TCP; empty: not served.
	MetricsAddr string
	// Registry receives calyx-node's metrics and is what /metrics serves;
	// nil: metrics are neither registered nor served.
	Registry *prometheus.Registry
	// MTU is the container interface MTU when a CNI config sets none;
	// 0 derives it: the MTU of the interface holding the node address,
	// less the VXLAN overhead when a pool asks for VXLAN (50 bytes over
	// IPv4, 70 over IPv6).
	MTU int
	// ResyncInterval is how often the kernel is re-read and reconciled in
	// full; default DefaultResyncInterval.
	ResyncInterval time.Duration
	// GCGrace is how long an endpoint's veth may be missing, or an IPAM
	// handle held by no endpoint, before it is collected; default
	// DefaultGCGrace.
	GCGrace time.Duration
	// TuneGC lets calyx-node set the Go runtime's GC percentage as its
	// load changes (see gctune.go); calyx-node sets it unless GOGC is in
	// its environment. Off in tests: the setting is the process's.
	TuneGC bool
	// DatastoreTimeout bounds the datastore work of one local API request:
	// an ADD fails with CNI code 11 after it, or at once while the health
	// monitor finds etcd unreachable or without a leader; default
	// DefaultDatastoreTimeout.
	DatastoreTimeout time.Duration
	// Netns is the network namespace calyx-node programs (a path such as
	// /run/netns/host-a); empty: its own.
	Netns string
	// DockerPluginDir, when set, is where calyx-node serves Docker's
	// network and IPAM plugins (calyx.sock and calyx-ipam.sock); empty:
	// the Docker plugin is off. calyx-node's flags default it to
	// /run/docker/plugins when /run/docker exists.
	DockerPluginDir string
	// DockerHost is dockerd's API, read for network names, container
	// labels and garbage collection; default docker.DefaultHost.
	DockerHost string
	// Ready, if set, is called once the node is registered, the local API
	// is listening and the datastore snapshot has been read.
	Ready func()
}

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// validate checks the settings and fills defaults.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("--name: the node name must be set")
	}
	if len(c.NodeName) > 253 || !nodeNameRE.MatchString(c.NodeName) {
		return fmt.Errorf("--name %q: expected a lower-case DNS name (letters, digits, '-' and '.')", c.NodeName)
	}
	if c.NodeIPv4 != "" {
		p, err := netip.ParsePrefix(c.NodeIPv4)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("--ip %q: expected an IPv4 address with prefix length, e.g. 10.0.0.5/24", c.NodeIPv4)
		}
	}
	if c.Netns != "" && !c.NoBGP {
		// GoBGP opens its sockets on goroutines of its own, in this
		// process's namespace, not in --netns.
		return fmt.Errorf("--netns %s: the BGP speaker listens and dials in calyx-node's own network namespace; run calyx-node inside it (ip netns exec NAME calyx-node ...) or pass --bgp=false", c.Netns)
	}
	if c.NodeIPv6 != "" {
		p, err := netip.ParsePrefix(c.NodeIPv6)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return fmt.Errorf("--ip6 %q: expected an IPv6 address with prefix length, e.g. 2001:db8::5/64", c.NodeIPv6)
		}
	}
	if c.ASNumber != "" {
		if _, err := api.ParseASNumber(c.ASNumber); err != nil {
			return fmt.Errorf("--as: %w", err)
		}
	}
	switch {
	case c.MTU < 0 || c.MTU > 0 && (c.MTU < 68 || c.MTU > 65535):
		return fmt.Errorf("--mtu %d: expected 68 to 65535", c.MTU)
	case c.ResyncInterval < 0:
		return fmt.Errorf("--resync-interval %s: must be positive", c.ResyncInterval)
	case c.GCGrace < 0:
		return fmt.Errorf("--gc-grace %s: must not be negative", c.GCGrace)
	case c.DatastoreTimeout < 0:
		return fmt.Errorf("--datastore-timeout %s: must be positive", c.DatastoreTimeout)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.DockerPluginDir != "" && c.DockerHost == "" {
		c.DockerHost = docker.DefaultHost
	}
	if c.Socket == "" {
		c.Socket = localapi.DefaultSocket
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.GCGrace == 0 {
		c.GCGrace = DefaultGCGrace
	}
	if c.DatastoreTimeout == 0 {
		c.DatastoreTimeout = DefaultDatastoreTimeout
	}
	return nil
}

// Run runs calyx-node until ctx ends. It returns nil after a normal stop,
// which leaves the kernel state in place for the next start.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return run(ctx, cfg, log, hooks{})
}

// hooks let tests run calyx-node over a fake kernel or watch its kernel
// writes.
type hooks struct {
	kernel   route.Kernel                    // nil: netlink in cfg.Netns
	vxlan    vxlan.Kernel                    // nil: netlink in cfg.Netns, or a fake with a fake kernel
	wrap     func(route.Kernel) route.Kernel // applied to the kernel in use
	policy   policyDataplane                 // nil: nftables in cfg.Netns
	claimTTL time.Duration                   // 0: DefaultClaimTTL
	alive    func(pid int) bool              // nil: processAlive
	// releaseInterval: 0 means DefaultDeferredReleaseInterval.
	releaseInterval time.Duration
}

// aliveFunc returns the test's process liveness check, or processAlive.
func (h hooks) aliveFunc() func(pid int) bool {
	if h.alive != nil {
		return h.alive
	}
	return processAlive
}

func run(ctx context.Context, cfg Config, log *slog.Logger, h hooks) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	dirLock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer func() { _ = dirLock.Close() }() // the kernel drops the lock at exit anyway
	hostID, err := loadHostID(cfg.DataDir)
	if err != nil {
		return err
	}
	ns, err := netns.Open(cfg.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	kernel := h.kernel
	k := nodeKernels{reap: h.kernel, vx: h.vxlan, underlayMTU: func(netip.Addr) (int, error) { return defaultUnderlayMTU, nil }}
	if kernel == nil {
		nk, err := route.NewNetlink(ns)
		if err != nil {
			return err
		}
		defer nk.Close()
		kernel = nk
		// The reaper's slow deletions go on a socket of their own.
		rk, err := route.NewNetlink(ns)
		if err != nil {
			return err
		}
		defer rk.Close()
		k.reap = rk
		k.routes = nk
		k.docker = netlinkDocker{h: nk.Handle()}
		k.underlayMTU = cachedMTU(func(a netip.Addr) (int, error) { return underlayMTU(nk.Handle(), a) }, underlayMTUTTL, time.Now)
		if k.vx == nil {
			vk, err := vxlan.NewNetlink(ns)
			if err != nil {
				return err
			}
			defer vk.Close()
			k.vx = vk
		}
		if cfg.NodeIPv4 == "" {
			ip, err := detectNodeAddr(nk.Handle(), false)
			if err != nil {
				log.Warn("the node address is unknown: pass --ip ADDR/PREFIX", "err", err)
			} else {
				cfg.NodeIPv4 = ip
				log.Info("node address detected from the default route", "ip", ip)
			}
		}
		if cfg.NodeIPv6 == "" {
			if ip, err := detectNodeAddr(nk.Handle(), true); err == nil {
				cfg.NodeIPv6 = ip
				log.Info("node IPv6 address detected from the default route", "ip6", ip)
			}
		}
	}
	if h.wrap != nil {
		kernel = h.wrap(kernel)
	}
	if k.vx == nil {
		k.vx = vxlan.NewFake()
	}
	k.host = kernel
	policy := h.policy
	if policy == nil {
		p, closeNft, err := newNftables(ns, log.With("component", "nftables"))
		if err != nil {
			return err
		}
		defer closeNft()
		policy = p
	}
	apiL, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	defer apiL.Close()
	var dl *dockerListeners
	if cfg.DockerPluginDir != "" {
		// Served before anything slower starts, so that a dockerd started
		// alongside finds the plugins; requests wait for the datastore.
		if dl, err = listenDocker(cfg); err != nil {
			return err
		}
		defer dl.close()
	}
	var metricsL net.Listener
	if cfg.MetricsAddr != "" {
		if metricsL, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsL.Close()
	}

	var store *datastore.Client
	var emb *datastore.Embedded
	if len(cfg.Etcd.Endpoints) == 0 {
		if emb, err = startEmbedded(ctx, cfg, log); err != nil {
			return err
		}
		defer func() {
			if err := emb.Close(); err != nil {
				log.Warn("stopping embedded etcd", "err", err)
			}
		}()
		store, err = emb.Client(ctx, log.With("component", "datastore"))
		if err != nil {
			return err
		}
		// calyx-node's client calls the server in process, so no health
		// check would notice it stop: calyx-node stops with it instead.
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		go func() {
			select {
			case <-emb.Stopped():
				stop()
			case <-ctx.Done():
			}
		}()
	} else if store, err = datastore.New(ctx, cfg.Etcd, log.With("component", "datastore")); err != nil {
		return err
	}
	defer store.Close()

	// An embedded etcd that stopped on its own is the reason for whatever
	// failed after it did.
	why := func(err error) error {
		if emb != nil {
			if serr := emb.StoppedErr(); serr != nil {
				return serr
			}
		}
		return err
	}
	claim, err := claimNode(ctx, store, cfg, hostID, cmp.Or(h.claimTTL, DefaultClaimTTL), log)
	if err != nil {
		return why(err)
	}
	// Registration, like every later write of this node's state, holds only
	// while this process holds the node's name.
	node, err := registerNode(ctx, fencedStore{Client: store, fence: claim.Fence}, cfg)
	if err != nil {
		return why(err)
	}
	log.Info("node registered", "node", node.Metadata.Name, "resourceVersion", node.Metadata.ResourceVersion)
	return why(serveNode(ctx, cfg, log, store, claim, k, policy, listeners{api: apiL, metrics: metricsL, docker: dl}, h))
}

// nodeKernels are the kernel interfaces calyx-node programs.
type nodeKernels struct {
	host route.Kernel // endpoints' host side and routes between hosts
	vx   vxlan.Kernel // VXLAN devices
	// routes is the netlink kernel whose route events the loop follows;
	// nil with a fake kernel.
	routes *route.Netlink
	// underlayMTU reads the MTU of the interface holding an address.
	underlayMTU func(netip.Addr) (int, error)
	// docker creates Docker endpoints' veths; nil with a fake kernel.
	docker dockerKernel
	// reap deletes released endpoints' veths, alongside host.
	reap linkDeleter
}

// listeners are the sockets calyx-node serves.
type listeners struct {
	api, metrics net.Listener
	docker       *dockerListeners // nil: the Docker plugin is off
}

// serveNode runs calyx-node's goroutines until ctx ends or one fails: the
// syncer feeding the view, the local API and metrics servers, the
// reconcile loop, and the garbage collectors. It returns after all have
// stopped, so the caller closes the datastore client and the embedded etcd
// only once nothing uses them.
func serveNode(ctx context.Context, cfg Config, log *slog.Logger, store *datastore.Client, claim *datastore.Claim, k nodeKernels, policy policyDataplane, ls listeners, h hooks) error {
	view := newView(cfg.NodeName, time.Now)
	view.expectAffinities()
	// The view keeps every resource it needs: the syncers keep no copy.
	syncer := datastore.NewSyncer(store, syncerKinds(), log.With("component", "syncer")).WithoutDeletedValues()
	affSyncer := datastore.NewSourceSyncer(store, ipam.AffinitySource(), log.With("component", "syncer", "source", "affinities")).WithoutDeletedValues()
	var reg prometheus.Registerer
	var gatherer prometheus.Gatherer
	if cfg.Registry != nil {
		reg, gatherer = cfg.Registry, cfg.Registry
	}
	m, err := newMetrics(reg, view, syncer.Status, store.Health, time.Now)
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	deferred, err := loadDeferredReleases(cfg.DataDir)
	if err != nil {
		return err
	}
	fenced := fencedStore{Client: store, fence: claim.Fence}
	alloc := ipam.New(fenced, ipam.WithLogger(log.With("component", "ipam")))
	host := route.New(k.host, log.With("component", "dataplane"))
	loop := newReconcileLoop(host, policy, calc.New(cfg.NodeName, calc.WithBGP(!cfg.NoBGP)), view, m, log.With("component", "dataplane"), time.Now, cfg.ResyncInterval)
	gr := cmp.Or(cfg.BGPGracefulRestart, bgp.DefaultGracefulRestartTime)
	var remoteOpts []route.RemoteOption
	if !cfg.NoBGP {
		// Routes from before a restart stay until the sessions are back,
		// for the graceful restart time; later withdrawals act at once.
		remoteOpts = append(remoteOpts, route.WithRemoteGrace(gr))
	}
	remote := route.NewRemote(k.host, log.With("component", "routing"), remoteOpts...)
	rt := &routing{
		remote: remote, vx: vxlan.New(k.vx, log.With("component", "vxlan")),
		underlayMTU: k.underlayMTU, log: log.With("component", "routing"),
	}
	loop.routing = rt
	var speaker *bgpRunner
	if !cfg.NoBGP {
		speaker = newBGPRunner(log.With("component", "bgp"), gr, loop.learnedRoutes)
		loop.bgp = speaker
		rt.learned = speaker.routes
	}
	svc := &service{
		node: cfg.NodeName, log: log.With("component", "api"), store: fenced, alloc: alloc, host: host,
		dp: loop, view: view, locks: newHandleLocks(), adds: newPendingAdds(h.aliveFunc()), m: m, mtu: cfg.MTU, underlayMTU: k.underlayMTU, now: time.Now,
		ds: store, dsTimeout: cfg.DatastoreTimeout, claim: claim, deferred: deferred,
		reaper: newReaper(k.reap, log.With("component", "reaper")),
	}
	hl := health{node: cfg.NodeName, ready: func() (bool, string) {
		switch {
		case !view.ready():
			return false, "waiting for the first datastore snapshot"
		case store.Unavailable() != nil:
			return false, store.Unavailable().Error()
		case !syncer.Status().InSync || !affSyncer.Status().InSync:
			return false, "reconnecting to the datastore"
		case loop.progress.failing() != nil:
			return false, loop.progress.failing().Error()
		}
		return true, ""
	}}
	gc := newCollector(svc, log.With("component", "gc"), cfg.GCGrace, gcInterval(cfg.GCGrace))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// A check is bounded by the datastore timeout too, so that an
		// outage is reported before requests start failing for it.
		return store.MonitorHealth(gctx, datastore.HealthConfig{Timeout: min(cfg.DatastoreTimeout, datastore.DefaultHealthTimeout)})
	})
	g.Go(func() error { return keepClaim(gctx, claim, cfg.NodeName, log) })
	g.Go(func() error { return syncer.Run(gctx, view) })
	g.Go(func() error { return affSyncer.Run(gctx, affinityFeed{view}) })
	if k.routes != nil {
		g.Go(func() error { return watchRoutes(gctx, k.routes, remote, loop, log.With("component", "routing")) })
	}
	if speaker != nil {
		g.Go(func() error { return speaker.run(gctx) })
	}
	status := nodeStatus{health: hl, loop: loop, bgp: speaker, syncers: []func() datastore.Status{syncer.Status, affSyncer.Status}}
	local := apiHandler(svc, hl, map[string]http.Handler{localapi.PathNodeStatus: http.HandlerFunc(status.serve)})
	tuner := newGCTuner(log.With("component", "gc-tuning"))
	if cfg.TuneGC {
		g.Go(func() error { tuner.run(gctx, gcTuneInterval); return nil })
	}
	g.Go(func() error { return serve(gctx, ls.api, tuner.wrap(local, cniWork), log) })
	if ls.metrics != nil {
		g.Go(func() error { return serve(gctx, ls.metrics, metricsHandler(gatherer, hl), log) })
	}
	if ls.docker != nil {
		if k.docker == nil {
			return errors.New("the Docker plugin needs the netlink kernel: it creates veths")
		}
		engine, err := docker.NewEngineClient(cfg.DockerHost)
		if err != nil {
			return err
		}
		dlog := log.With("component", "docker")
		be := newDockerBackend(svc, k.docker, dlog)
		drv := docker.NewDriver(be, engine, dlog, func(method string, took time.Duration, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			m.dockerSeconds.WithLabelValues(method, result).Observe(took.Seconds())
		})
		g.Go(func() error {
			<-gctx.Done()
			be.close()
			return nil
		})
		g.Go(func() error { return serve(gctx, ls.docker.network, tuner.wrap(drv.NetworkHandler(), nil), dlog) })
		g.Go(func() error { return serve(gctx, ls.docker.ipam, tuner.wrap(drv.IPAMHandler(), nil), dlog) })
		gc.docker = engine.NetworkEndpoints
	}
	g.Go(func() error { return loop.run(gctx) })
	g.Go(func() error { svc.reaper.run(gctx); return nil })
	g.Go(func() error { return gc.run(gctx, gcInterval(cfg.GCGrace)) })
	tunnelChanges := view.subscribe(api.KindNode, api.KindIPPool)
	g.Go(func() error {
		svc.runTunnelAddrs(gctx, tunnelChanges, log.With("component", "vxlan"))
		return nil
	})
	g.Go(func() error {
		svc.runDeferredReleases(gctx, cmp.Or(h.releaseInterval, DefaultDeferredReleaseInterval))
		return nil
	})
	g.Go(func() error {
		runBlockGC(gctx, alloc, svc.checkClaim, cfg.NodeName, blockGCInterval, blockGCGrace, svc.dsTimeout, time.Now, log.With("component", "ipam"))
		return nil
	})
	g.Go(func() error {
		if view.waitReady(gctx) != nil {
			return nil
		}
		log.Info("calyx-node ready", "socket", cfg.Socket, "endpoints", len(view.endpoints()))
		if cfg.Ready != nil {
			cfg.Ready()
		}
		return nil
	})
	err = g.Wait()
	log.Info("calyx-node stopping")
	return err
}
