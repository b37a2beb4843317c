package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
	"github.com/calyx-net/calyx/internal/testnet"
)

// runEmbeddedNode runs calyx-node with its embedded etcd until it is ready
// and returns a function that stops it.
func runEmbeddedNode(t *testing.T, cfg Config) func() {
	t.Helper()
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, testnet.Logger(t), hooks{kernel: route.NewFake(), policy: fakeNftables()})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("calyx-node exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("calyx-node did not become ready")
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("calyx-node stopped with %v", err)
		}
	}
}

func TestEmbeddedEtcdServesOnlyTLS(t *testing.T) {
	ports := testnet.FreePorts(t, 2)
	dataDir := t.TempDir()
	cfg := Config{
		NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.10/24",
		DataDir:           dataDir,
		EmbeddedClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		EmbeddedPeerURL:   fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		Socket:            filepath.Join(t.TempDir(), "calyx.sock"),
		GCGrace:           time.Hour, ResyncInterval: time.Hour,
	}
	stop := runEmbeddedNode(t, cfg)

	files := pki.Paths(filepath.Join(dataDir, "etcd-pki"))
	st, err := os.Stat(files.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s mode %v, want 0700", files.Dir, st.Mode().Perm())
	}
	for _, k := range []string{files.CAKey, files.ServerKey, files.PeerKey, files.ClientKey} {
		st, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	caBefore, err := os.ReadFile(files.CACert)
	if err != nil {
		t.Fatal(err)
	}

	withCert := datastore.Config{Endpoints: []string{cfg.EmbeddedClientURL}, CAFile: files.CACert, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := datastore.New(ctx, withCert, nil)
	if err != nil {
		t.Fatalf("client with the PKI's client certificate: %v", err)
	}
	_ = c.Close()
	for name, bad := range map[string]datastore.Config{
		"no client certificate": {Endpoints: withCert.Endpoints, CAFile: files.CACert, DialTimeout: 500 * time.Millisecond},
		"plain http":            {Endpoints: []string{strings.Replace(cfg.EmbeddedClientURL, "https", "http", 1)}, DialTimeout: 500 * time.Millisecond},
	} {
		if c, err := datastore.New(ctx, bad, nil); err == nil {
			_ = c.Close()
			t.Errorf("%s: the embedded etcd accepted the client", name)
		}
	}

	// A restart reuses the CA (the copies other hosts hold stay valid).
	stop()
	stop = runEmbeddedNode(t, cfg)
	defer stop()
	caAfter, err := os.ReadFile(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Error("ca.crt changed across a restart")
	}
	c, err = datastore.New(ctx, withCert, nil)
	if err != nil {
		t.Fatalf("client after a restart: %v", err)
	}
	_ = c.Close()
}

func TestEmbeddedEtcdRefusesHTTPURL(t *testing.T) {
	dataDir := t.TempDir()
	for _, tc := range []struct{ client, peer, want string }{
		{"http://127.0.0.1:2379", "", "--etcd-listen-client-url http://127.0.0.1:2379: the embedded etcd serves only TLS with client certificates; use https://"},
		{"", "http://127.0.0.1:2380", "--etcd-listen-peer-url http://127.0.0.1:2380: the embedded etcd serves only TLS with client certificates; use https://"},
	} {
		cfg := Config{
			NoBGP: true, NodeName: "node-a", NodeIPv4: "192.0.2.10/24", DataDir: dataDir,
			EmbeddedClientURL: tc.client, EmbeddedPeerURL: tc.peer,
			Socket: filepath.Join(t.TempDir(), "calyx.sock"),
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := run(ctx, cfg, testnet.Logger(t), hooks{kernel: route.NewFake(), policy: fakeNftables()})
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run with %q/%q: %v, want %q", tc.client, tc.peer, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "etcd-pki")); !os.IsNotExist(err) {
		t.Errorf("a refused start created the PKI: %v", err)
	}
}
