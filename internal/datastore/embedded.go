package datastore

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/calyx-net/calyx/internal/pki"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap/zapcore"
)

// Embedded-etcd defaults.
const (
	DefaultEmbeddedName      = "calyx"
	DefaultEmbeddedClientURL = "https://127.0.0.1:2379"
	DefaultEmbeddedPeerURL   = "https://127.0.0.1:2380"
	// embeddedStartTimeout bounds the wait for the server to be ready.
	embeddedStartTimeout = 60 * time.Second
)

// EmbeddedConfig describes a single-member etcd run in-process. DataDir
// and the TLS files are required: the embedded etcd serves only TLS, and
// only to clients and peers that present a certificate signed by CAFile
// (internal/pki makes all of them).
type EmbeddedConfig struct {
	DataDir   string
	Name      string // member name (default "calyx")
	ClientURL string // where clients connect (default https://127.0.0.1:2379)
	PeerURL   string // where peers would connect (default https://127.0.0.1:2380)
	// Log receives the server's warnings and errors; nil discards them.
	Log *slog.Logger
	// ServerCertFile and ServerKeyFile are presented on the client port,
	// PeerCertFile and PeerKeyFile on the peer port (as server and as
	// client); CAFile verifies clients and peers. The peer port accepts
	// only certificates named pki.PeerCommonName, as pki's peer.crt is,
	// so PeerCertFile must carry that common name.
	ServerCertFile, ServerKeyFile string
	PeerCertFile, PeerKeyFile     string
	CAFile                        string
	// MaxTxnOps is the most operations one transaction may hold (default
	// 2048, etcd's own default is 128), so that Batch can write a large
	// calyxctl apply atomically.
	MaxTxnOps uint
	// UnsafeNoFsync skips fsync: much faster, and loses data on a crash.
	// For tests only.
	UnsafeNoFsync bool
}

func (c EmbeddedConfig) withDefaults() EmbeddedConfig {
	if c.Name == "" {
		c.Name = DefaultEmbeddedName
	}
	if c.ClientURL == "" {
		c.ClientURL = DefaultEmbeddedClientURL
	}
	if c.PeerURL == "" {
		c.PeerURL = DefaultEmbeddedPeerURL
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Embedded is a running in-process etcd.
type Embedded struct {
	cfg       EmbeddedConfig
	etcd      *embed.Etcd
	closing   *atomic.Bool // demotes the server's shutdown noise to debug
	closeOnce sync.Once
}

// StartEmbedded starts a single-member etcd keeping its data in
// cfg.DataDir (created if missing; an existing member's data is reused) and
// waits, at most a minute or until ctx ends, until it serves clients. A
// port already in use fails at once with an error naming the URL.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	cfg = cfg.withDefaults()
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("starting embedded etcd: no data directory")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	closing := new(atomic.Bool)
	ecfg, err := cfg.etcdConfig(closing)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, cfg.startError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, embeddedStartTimeout)
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
		return &Embedded{cfg: cfg, etcd: e, closing: closing}, nil
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		return nil, cfg.startError(err)
	case <-ctx.Done():
		closing.Store(true)
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd at %s (data %s) did not become ready: %w", cfg.ClientURL, cfg.DataDir, ctx.Err())
	}
}

// etcdConfig translates cfg into etcd's own configuration.
func (c EmbeddedConfig) etcdConfig(closing *atomic.Bool) (*embed.Config, error) {
	curl, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL %q: %w", c.ClientURL, err)
	}
	purl, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer URL %q: %w", c.PeerURL, err)
	}
	ecfg := embed.NewConfig()
	ecfg.Name = c.Name
	ecfg.Dir = c.DataDir
	ecfg.ListenClientUrls = []url.URL{*curl}
	ecfg.AdvertiseClientUrls = []url.URL{*curl}
	ecfg.ListenPeerUrls = []url.URL{*purl}
	ecfg.AdvertisePeerUrls = []url.URL{*purl}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(c.Name)
	ecfg.MaxTxnOps = c.MaxTxnOps
	ecfg.MaxRequestBytes = DefaultMaxRequestBytes
	ecfg.UnsafeNoFsync = c.UnsafeNoFsync
	// History is kept for an hour: enough for any watcher to catch up,
	// bounded so that endpoint churn cannot fill the backend quota.
	ecfg.AutoCompactionMode = embed.CompactorModePeriodic
	ecfg.AutoCompactionRetention = "1h"
	// Calyx talks gRPC only; the JSON gateway would be one more listener
	// and client connection for nothing.
	ecfg.EnableGRPCGateway = false
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(c.Log, zapcore.WarnLevel, "etcd", closing))
	ecfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       c.ServerCertFile,
		KeyFile:        c.ServerKeyFile,
		TrustedCAFile:  c.CAFile,
		ClientCertAuth: true,
	}
	// The CA also signs the client certificate, which every joining host
	// holds; the peer port must not take it for a member's, so it
	// accepts (and, dialling, expects) only the peer certificate's name.
	ecfg.PeerTLSInfo = transport.TLSInfo{
		CertFile:       c.PeerCertFile,
		KeyFile:        c.PeerKeyFile,
		TrustedCAFile:  c.CAFile,
		ClientCertAuth: true,
		AllowedCNs:     []string{pki.PeerCommonName},
	}
	return ecfg, nil
}

// validate refuses plain-http URLs and missing TLS files, so that the
// embedded etcd can never serve anyone without a certificate.
func (c EmbeddedConfig) validate() error {
	if _, err := ListenHost("--etcd-listen-client-url", c.ClientURL); err != nil {
		return err
	}
	if _, err := ListenHost("--etcd-listen-peer-url", c.PeerURL); err != nil {
		return err
	}
	for _, f := range []struct{ name, path string }{
		{"server certificate", c.ServerCertFile}, {"server key", c.ServerKeyFile},
		{"peer certificate", c.PeerCertFile}, {"peer key", c.PeerKeyFile},
		{"CA certificate", c.CAFile},
	} {
		if f.path == "" {
			return fmt.Errorf("starting embedded etcd: no %s file (the embedded etcd serves only TLS with client certificates)", f.name)
		}
	}
	return c.checkPeerCert()
}

// checkPeerCert refuses a peer certificate that the peer port of another
// member (or this one) would not accept: one whose common name is not
// pki.PeerCommonName.
func (c EmbeddedConfig) checkPeerCert() error {
	b, err := os.ReadFile(c.PeerCertFile)
	if err != nil {
		return fmt.Errorf("starting embedded etcd: reading peer certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("starting embedded etcd: peer certificate %s: expected a PEM CERTIFICATE block", c.PeerCertFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("starting embedded etcd: parsing peer certificate %s: %w", c.PeerCertFile, err)
	}
	if cn := cert.Subject.CommonName; cn != pki.PeerCommonName {
		return fmt.Errorf("starting embedded etcd: peer certificate %s has common name %q, expected %q (the peer port accepts only certificates with that name)",
			c.PeerCertFile, cn, pki.PeerCommonName)
	}
	return nil
}

// ListenHost checks that rawURL, given by flag, is an https:// URL the
// embedded etcd may listen on, and returns its host (name or address,
// without brackets or port), which its server certificate must cover.
func ListenHost(flag, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", flag, rawURL, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%s %s: the embedded etcd serves only TLS with client certificates; use https://", flag, rawURL)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return "", fmt.Errorf("%s %s: expected https://HOST:PORT", flag, rawURL)
	}
	return u.Hostname(), nil
}

// startError explains a failed start, naming the URL whose port is taken.
func (c EmbeddedConfig) startError(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		for _, u := range []string{c.ClientURL, c.PeerURL} {
			if pu, perr := url.Parse(u); perr == nil && strings.Contains(err.Error(), pu.Host) {
				return fmt.Errorf("starting embedded etcd: %s is already in use (another etcd or calyx-node?): %w", u, err)
			}
		}
		return fmt.Errorf("starting embedded etcd: %s or %s is already in use: %w", c.ClientURL, c.PeerURL, err)
	}
	return fmt.Errorf("starting embedded etcd (client %s, peer %s, data %s): %w", c.ClientURL, c.PeerURL, c.DataDir, err)
}

// Endpoints returns the client URLs to give to New.
func (e *Embedded) Endpoints() []string { return []string{e.cfg.ClientURL} }

// Config returns the configuration the server was started with (with
// defaults filled in), e.g. to restart it on the same data and ports.
func (e *Embedded) Config() EmbeddedConfig { return e.cfg }

// Err delivers errors the server hits while running; it is closed when
// the server has stopped.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Stopped is closed when the server has stopped, by Close or on its own
// (e.g. a failed disk).
func (e *Embedded) Stopped() <-chan struct{} { return e.etcd.Server.StopNotify() }

// StoppedErr says why the server stopped on its own: nil while it runs or
// once Close was called, else an error naming its data directory with the
// server's own error when it reported one.
func (e *Embedded) StoppedErr() error {
	if e.closing.Load() {
		return nil
	}
	select {
	case <-e.Stopped():
	default:
		return nil
	}
	select {
	case err, ok := <-e.etcd.Err():
		if ok && err != nil {
			return fmt.Errorf("the embedded etcd (data %s) stopped: %w", e.cfg.DataDir, err)
		}
	default:
	}
	return fmt.Errorf("the embedded etcd (data %s) stopped", e.cfg.DataDir)
}

// Close stops the server and waits until it has released its ports and
// data directory. Open client watches delay it by up to a few seconds
// (etcd drains them), so stop syncers first. It is safe to call twice.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
	return nil
}

// Client returns a client of this process's server that calls it
// directly: no connection, TLS, HTTP/2 or protobuf encoding between them,
// which is most of what a small write costs the process that serves it.
// It behaves as New's client (errors, leases, watches), and needs no
// certificate because it never leaves the process. It skips what etcd
// does in its gRPC layer: requests are not limited in size before the
// server's own limit (MaxRequestBytes), and WithRequireLeader has no
// effect, which for a single member changes nothing: its health checks
// cannot see the server stop, which Stopped tells instead; once it has,
// requests fail as unavailable. Like New, it first proves that the server
// answers; Close releases it. log receives the client's own error-level
// messages; nil discards them.
func (e *Embedded) Client(ctx context.Context, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli := v3client.New(e.etcd.Server)
	c := &Client{cli: cli, log: log, endpoints: e.Endpoints(), members: e.Endpoints(), inProcess: true, now: time.Now}
	pctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	_, err := cli.Get(pctx, probeKey, clientv3.WithCountOnly())
	cancel()
	if err != nil {
		_ = cli.Close()
		return nil, c.wrapErr("reading from the embedded etcd", err)
	}
	return c, nil
}
