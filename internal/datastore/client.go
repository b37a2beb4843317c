package datastore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Limits on what one request may carry. The embedded etcd is started with
// matching server limits; an external etcd needs --max-txn-ops and
// --max-request-bytes raised for batches that exceed its defaults (128
// operations, 1.5 MiB).
const (
	DefaultMaxTxnOps       = 2048
	DefaultMaxRequestBytes = 8 << 20
)

// probeKey is read once by New to prove that etcd answers (a linearizable
// read, so it also needs a leader).
const probeKey = "/calyx/probe"

// Client reads and writes Calyx resources in etcd. It is safe for
// concurrent use; Close releases its connections.
type Client struct {
	cli       *clientv3.Client
	log       *slog.Logger
	endpoints []string
	// members are the endpoints asked for their status, one by one: the
	// client's own, or, in process, the server's client URL (any name
	// reaches the one server).
	members []string
	// inProcess: the client calls the embedded server directly
	// (Embedded.Client).
	inProcess bool
	now       func() time.Time
	health    healthState
	group     group
	closeOnce sync.Once
	closeErr  error
}

// New connects to etcd and checks, within cfg.DialTimeout (default 5 s),
// that it answers, so that a wrong or dead endpoint fails here, with an
// error for which IsUnreachable is true (IsNoLeader when the members answer
// but have no leader), rather than on first use. log
// receives the client's own error-level messages; nil discards them.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	endpoints := cfg.resolvedEndpoints()
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		for _, e := range endpoints {
			if strings.HasPrefix(e, "http://") {
				return nil, fmt.Errorf("etcd endpoint %s is plain http but TLS files are set: use https://", e)
			}
		}
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	dialOpts := []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: 5 * time.Second,
	})}
	if cfg.Dial != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(cfg.Dial))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: timeout,
		TLS:         tlsCfg,
		// Keepalives let a watch notice a dead connection; 10 s stays above
		// the server's minimum ping interval (5 s by default).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		MaxCallSendMsgSize:   2 * DefaultMaxRequestBytes,
		Logger:               newZapLogger(log, zapcore.ErrorLevel, "etcd-client", nil),
		// gRPC's default reconnect backoff grows to two minutes; after an
		// etcd restart the agents should be back within seconds.
		DialOptions: dialOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring etcd client for %s: %w", strings.Join(endpoints, ", "), err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = cli.Get(pctx, probeKey, clientv3.WithCountOnly())
	cancel()
	c := &Client{cli: cli, log: log, endpoints: endpoints, members: cli.Endpoints(), now: time.Now}
	if err != nil {
		defer cli.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(endpoints, ", "), ctx.Err())
		}
		if leaderLost(err) {
			return nil, noLeader(endpoints, err)
		}
		// Members that answer a status request but not a read have no
		// leader; say so rather than "unreachable".
		if h := c.Check(ctx, min(timeout, DefaultHealthTimeout)); h.State == HealthNoLeader {
			return nil, noLeader(endpoints, err)
		}
		if serverTimedOut(err) {
			return nil, timedOut(endpoints, err)
		}
		return nil, unreachable(endpoints, err)
	}
	return c, nil
}

// Endpoints returns the endpoints the client was configured with.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close closes the connections to etcd; watches and syncers using the
// client end. Calling it again returns the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		err := c.cli.Close()
		if c.inProcess && errors.Is(err, context.Canceled) {
			err = nil // with no connection, closing is cancelling its context
		}
		if err != nil {
			c.closeErr = fmt.Errorf("closing etcd client: %w", err)
		}
	})
	return c.closeErr
}

// Revision returns etcd's current revision.
func (c *Client) Revision(ctx context.Context) (int64, error) {
	resp, err := c.cli.Get(ctx, probeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, c.wrapErr("reading etcd revision", err)
	}
	return resp.Header.Revision, nil
}

// ServerVersion returns the etcd server version of the first endpoint that
// answers, for calyxctl version.
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	var errs []error
	for _, ep := range c.members {
		resp, err := c.cli.Status(ctx, ep)
		if err == nil {
			return resp.Version, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return "", c.wrapErr("reading the etcd version", errors.Join(errs...))
}

// Compact discards etcd's history before rev (keys' current values are
// kept). Watches that still need older revisions are cancelled; a Syncer
// recovers from that by listing again.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	if _, err := c.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return c.wrapErr(fmt.Sprintf("compacting etcd at revision %d", rev), err)
	}
	return nil
}

// newUID returns a random RFC 4122 version 4 UUID.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// timestamp formats a creation time the way Kubernetes-style metadata does.
func (c *Client) timestamp() string { return c.now().UTC().Format(time.RFC3339) }
