// Command calyx-node is the per-host Calyx agent. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/calyx-net/calyx/internal/agent"
	"github.com/calyx-net/calyx/internal/datastore"
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
	env := datastore.ConfigFromEnv(os.Getenv)
	var cfg agent.Config
	var endpoints, logLevel string
	var showVersion bool
	fs.StringVar(&cfg.NodeName, "name", strings.ToLower(host), "this host's node name")
	fs.StringVar(&cfg.NodeIPv4, "ip", "", "this host's IPv4 address with prefix, e.g. 10.0.0.5/24 (default: detected from the interface of the default route)")
	fs.StringVar(&cfg.ASNumber, "as", "", "this node's BGP AS number (default: the cluster's)")
	fs.StringVar(&endpoints, "etcd-endpoints", os.Getenv("CALYX_ETCD_ENDPOINTS"), "comma-separated etcd endpoints; empty runs an embedded etcd (env CALYX_ETCD_ENDPOINTS)")
	fs.StringVar(&cfg.Etcd.CAFile, "etcd-ca-file", env.CAFile, "CA certificate for etcd TLS (env CALYX_ETCD_CA_FILE)")
	fs.StringVar(&cfg.Etcd.CertFile, "etcd-cert-file", env.CertFile, "client certificate for etcd TLS (env CALYX_ETCD_CERT_FILE)")
	fs.StringVar(&cfg.Etcd.KeyFile, "etcd-key-file", env.KeyFile, "client key for etcd TLS (env CALYX_ETCD_KEY_FILE)")
	fs.StringVar(&cfg.DataDir, "data-dir", agent.DefaultDataDir, "state directory; the embedded etcd keeps its data in DIR/etcd")
	fs.StringVar(&cfg.EmbeddedClientURL, "etcd-listen-client-url", "http://127.0.0.1:2379", "where the embedded etcd serves clients")
	fs.StringVar(&cfg.EmbeddedPeerURL, "etcd-listen-peer-url", "http://127.0.0.1:2380", "where the embedded etcd listens for peers")
	fs.StringVar(&cfg.Socket, "socket", localapi.DefaultSocket, "unix socket of the local API the CNI plugins call")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9091", "where /metrics, /healthz and /readyz are served over HTTP; empty disables")
	fs.IntVar(&cfg.MTU, "mtu", agent.DefaultMTU, "container interface MTU when the CNI config sets none")
	fs.DurationVar(&cfg.ResyncInterval, "resync-interval", agent.DefaultResyncInterval, "how often the kernel state is re-read and reconciled in full")
	fs.DurationVar(&cfg.GCGrace, "gc-grace", agent.DefaultGCGrace, "how long an endpoint's host veth may be missing, or an IPAM handle unheld, before it is released")
	fs.DurationVar(&cfg.DatastoreTimeout, "datastore-timeout", agent.DefaultDatastoreTimeout, "how long a CNI request may wait for etcd before it fails with code 11 (\"try again later\")")
	fs.StringVar(&cfg.Netns, "netns", "", "network namespace to program, e.g. /run/netns/NAME (default: calyx-node's own)")
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
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Etcd.Endpoints = append(cfg.Etcd.Endpoints, e)
		}
	}
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
	return agent.Run(ctx, cfg, log)
}
