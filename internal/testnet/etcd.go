package testnet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
)

// EtcdConfig returns the configuration of a fresh embedded etcd for t: free
// loopback ports served over TLS with client certificates from a fresh PKI
// (see PKI and ClientConfig), data in t.TempDir(), no fsync, logs
// discarded. Tests that restart the server pass it to StartEtcdWith more
// than once.
func EtcdConfig(t testing.TB) datastore.EmbeddedConfig {
	t.Helper()
	ports := FreePorts(t, 2)
	f := PKI(t)
	return datastore.EmbeddedConfig{
		DataDir:        filepath.Join(t.TempDir(), "etcd"), // etcd creates it 0700
		Name:           "test",
		ClientURL:      fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		PeerURL:        fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		Log:            slog.New(slog.DiscardHandler),
		UnsafeNoFsync:  true,
		ServerCertFile: f.ServerCert,
		ServerKeyFile:  f.ServerKey,
		PeerCertFile:   f.PeerCert,
		PeerKeyFile:    f.PeerKey,
		CAFile:         f.CACert,
	}
}

// StartEtcd starts an embedded etcd for t, stopped when t ends.
func StartEtcd(t testing.TB) *datastore.Embedded {
	t.Helper()
	for attempt := 0; ; attempt++ {
		e, err := startEtcd(t, EtcdConfig(t))
		if err == nil {
			return e
		}
		// A free port can be taken between FreePorts and the server's
		// bind; pick new ones a few times before giving up.
		if attempt < 3 && strings.Contains(err.Error(), "already in use") {
			continue
		}
		t.Fatalf("starting etcd: %v", err)
	}
}

// StartEtcdWith starts an embedded etcd with cfg, stopped when t ends.
// Closing it earlier (to restart it) is fine.
func StartEtcdWith(t testing.TB, cfg datastore.EmbeddedConfig) *datastore.Embedded {
	t.Helper()
	e, err := startEtcd(t, cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	return e
}

func startEtcd(t testing.TB, cfg datastore.EmbeddedConfig) (*datastore.Embedded, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := datastore.StartEmbedded(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, nil
}

// NewClient connects a datastore client to e with the client certificate
// of its PKI, closed when t ends.
func NewClient(t testing.TB, e *datastore.Embedded) *datastore.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := datastore.New(ctx, ClientConfig(e), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("connecting to etcd: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
