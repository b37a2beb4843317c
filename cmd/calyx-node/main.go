// Command calyx-node is the per-host Calyx agent. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/calyx-net/calyx/internal/agent"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/docker"
	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "calyx-node:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("calyx-node", flag.ContinueOnError)
	host, _ := os.Hostname()
	var cfg agent.Config
	var etcdFlags datastore.Settings
	var logLevel string
	var showVersion bool
	fs.StringVar(&cfg.NodeName, "name", strings.ToLower(host), "this host's node name")
	fs.StringVar(&cfg.NodeIPv4, "ip", "", "this host's IPv4 address with prefix, e.g. 10.0.0.5/24 (default: detected from the interface of the default route)")
	fs.StringVar(&cfg.NodeIPv6, "ip6", "", "this host's IPv6 address with prefix, e.g. 2001:db8::5/64 (default: detected from the interface of the IPv6 default route, if any)")
	fs.StringVar(&cfg.ASNumber, "as", "", "this node's BGP AS number (default: the cluster's)")
	bgpOn := fs.Bool("bgp", true, "run the BGP speaker (false: route to hosts on this subnet from the block affinities, advertise nothing)")
	fs.DurationVar(&cfg.BGPGracefulRestart, "bgp-graceful-restart", 0, "BGP graceful restart time: how long peers keep this node's routes while it restarts, and it keeps theirs (default 2m)")
	fs.StringVar(&etcdFlags.Endpoints, "etcd-endpoints", "", "comma-separated etcd endpoints; empty runs an embedded etcd (env CALYX_ETCD_ENDPOINTS)")
	fs.StringVar(&etcdFlags.CAFile, "etcd-ca-file", "", "CA certificate for etcd TLS (env CALYX_ETCD_CA_FILE)")
	fs.StringVar(&etcdFlags.CertFile, "etcd-cert-file", "", "client certificate for etcd TLS (env CALYX_ETCD_CERT_FILE)")
	fs.StringVar(&etcdFlags.KeyFile, "etcd-key-file", "", "client key for etcd TLS (env CALYX_ETCD_KEY_FILE)")
	fs.StringVar(&cfg.DataDir, "data-dir", agent.DefaultDataDir, "state directory; the embedded etcd keeps its data in DIR/etcd and its CA and certificates in DIR/etcd-pki")
	fs.StringVar(&cfg.EmbeddedClientURL, "etcd-listen-client-url", datastore.DefaultEmbeddedClientURL, "where the embedded etcd serves clients (https:// only: TLS with client certificates)")
	fs.StringVar(&cfg.EmbeddedPeerURL, "etcd-listen-peer-url", datastore.DefaultEmbeddedPeerURL, "where the embedded etcd listens for peers (https:// only: TLS with client certificates)")
	fs.StringVar(&cfg.Socket, "socket", localapi.DefaultSocket, "unix socket of the local API the CNI plugins call")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9091", "where /metrics, /healthz and /readyz are served over HTTP; empty disables")
	fs.IntVar(&cfg.MTU, "mtu", 0, "container interface MTU when the CNI config sets none (0: the node interface's MTU, less the VXLAN overhead when a pool uses VXLAN)")
	fs.DurationVar(&cfg.ResyncInterval, "resync-interval", agent.DefaultResyncInterval, "how often the kernel state is re-read and reconciled in full")
	fs.DurationVar(&cfg.GCGrace, "gc-grace", agent.DefaultGCGrace, "how long an endpoint's host veth may be missing, or an IPAM handle unheld, before it is released")
	fs.DurationVar(&cfg.DatastoreTimeout, "datastore-timeout", agent.DefaultDatastoreTimeout, "how long a CNI request may wait for etcd before it fails with code 11 (\"try again later\")")
	fs.StringVar(&cfg.Netns, "netns", "", "network namespace to program, e.g. /run/netns/NAME (default: calyx-node's own)")
	dockerOn := fs.Bool("docker", true, "serve the Docker network and IPAM plugins (calyx, calyx-ipam) when the plugin directory's parent exists")
	dockerDir := fs.String("docker-plugin-dir", "/run/docker/plugins", "where dockerd looks for plugin sockets")
	fs.StringVar(&cfg.DockerHost, "docker-host", docker.DefaultHost, "dockerd's API, read for network names, container labels and garbage collection")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if showVersion {
		fmt.Println(version)
		return nil
	}
	// Host names are case-insensitive and node names lower-case, so that
	// --name %H works in the systemd unit whatever the host's spelling.
	cfg.NodeName = strings.ToLower(cfg.NodeName)
	etcd, err := resolveEtcd(etcdFlags, os.Getenv)
	if err != nil {
		return err
	}
	cfg.Etcd = etcd
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: expected debug, info, warn or error", logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registry = reg
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("calyx-node starting", "version", version, "node", cfg.NodeName)
	cfg.NoBGP = !*bgpOn
	// GOGC in the environment is the operator's choice; else calyx-node
	// tunes it (agent.Config.TuneGC).
	_, gogcSet := os.LookupEnv("GOGC")
	cfg.TuneGC = !gogcSet
	if *dockerOn {
		if _, err := os.Stat(filepath.Dir(*dockerDir)); err == nil {
			cfg.DockerPluginDir = *dockerDir
		} else {
			log.Info("the Docker plugin is off: the plugin directory's parent does not exist", "dockerPluginDir", *dockerDir)
		}
	}
	return agent.Run(ctx, cfg, log)
}

// resolveEtcd resolves the datastore settings from the flags and the
// environment (calyx-node reads no calyxctl.yaml). With none, calyx-node
// runs its embedded etcd with its own PKI, so TLS files without endpoints
// are a mistake worth naming.
func resolveEtcd(flags datastore.Settings, getenv func(string) string) (datastore.Config, error) {
	cfg, err := datastore.Resolve(datastore.Sources{Flags: flags, Getenv: getenv})
	if err != nil {
		return cfg, err
	}
	if len(cfg.Endpoints) == 0 && (cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "") {
		return cfg, fmt.Errorf("--etcd-ca-file, --etcd-cert-file or --etcd-key-file (or %s, %s, %s) is set without --etcd-endpoints (%s): "+
			"they are for an external etcd; the embedded etcd uses the certificates it makes under --data-dir/etcd-pki",
			datastore.EnvCAFile, datastore.EnvCertFile, datastore.EnvKeyFile, datastore.EnvEndpoints)
	}
	return cfg, nil
}
