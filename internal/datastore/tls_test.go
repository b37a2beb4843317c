package datastore_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestTLS(t *testing.T) {
	e := testnet.StartEtcd(t)
	good := testnet.ClientConfig(e)
	if !strings.HasPrefix(good.Endpoints[0], "https://") {
		t.Fatalf("test etcd serves %s, want https", good.Endpoints[0])
	}
	c, err := datastore.New(testCtx(t), good, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustCreate(t, c, pool("over-tls", "10.1.0.0/16", nil))
	if _, err := c.Get(testCtx(t), kind(t, "ippool"), "over-tls"); err != nil {
		t.Fatal(err)
	}

	// Without a client certificate the server refuses the connection.
	_, err = datastore.New(context.Background(), datastore.Config{
		Endpoints: e.Endpoints(), CAFile: good.CAFile, DialTimeout: 500 * time.Millisecond,
	}, nil)
	if !datastore.IsUnreachable(err) {
		t.Errorf("New without a client certificate: %v, want IsUnreachable", err)
	}

	// Plain http with TLS files set is a configuration mistake.
	_, err = datastore.New(context.Background(), datastore.Config{
		Endpoints: []string{"http://127.0.0.1:2379"}, CAFile: good.CAFile,
	}, nil)
	if err == nil || datastore.IsUnreachable(err) {
		t.Errorf("New with http:// and TLS files: %v", err)
	}
}

// TestEmbeddedPeerPortNeedsClientCert checks that the peer port, which
// answers /members, talks to nobody but holders of the peer certificate:
// not to those without a certificate, and not to holders of the client
// certificate (which the same CA signs and every joining host has).
func TestEmbeddedPeerPortNeedsClientCert(t *testing.T) {
	cfg := testnet.EtcdConfig(t)
	testnet.StartEtcdWith(t, cfg)
	members := strings.TrimPrefix(cfg.PeerURL, "https://") + "/members"
	ca, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	get := func(url string, tlsCfg *tls.Config) (int, string, error) {
		tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		resp, err := hc.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	if code, body, err := get("http://"+members, nil); err == nil && (code == http.StatusOK || strings.Contains(body, cfg.Name)) {
		t.Errorf("plain http GET /members on the peer port: %d %q, want a refusal", code, body)
	}
	if code, body, err := get("https://"+members, &tls.Config{RootCAs: roots}); err == nil {
		t.Errorf("https GET /members without a client certificate: %d %q, want a TLS refusal", code, body)
	}
	f := pki.Paths(filepath.Dir(cfg.CAFile))
	clientPair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := get("https://"+members, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}}); err == nil {
		t.Errorf("https GET /members with the client certificate: %d %q, want a TLS refusal", code, body)
	}
	// The same request with the peer certificate works, so the refusals
	// above are about the certificate and nothing else.
	pair, err := tls.LoadX509KeyPair(cfg.PeerCertFile, cfg.PeerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := get("https://"+members, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	if err != nil || code != http.StatusOK || !strings.Contains(body, cfg.Name) {
		t.Errorf("GET /members with the peer certificate: %d %q %v, want 200 naming member %q", code, body, err, cfg.Name)
	}
}

func TestEmbeddedRefusesPlainHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*datastore.EmbeddedConfig)
		want string
	}{
		{"http client URL", func(c *datastore.EmbeddedConfig) { c.ClientURL = "http://127.0.0.1:1" },
			"--etcd-listen-client-url http://127.0.0.1:1: the embedded etcd serves only TLS with client certificates; use https://"},
		{"http peer URL", func(c *datastore.EmbeddedConfig) { c.PeerURL = "http://127.0.0.1:2" },
			"--etcd-listen-peer-url http://127.0.0.1:2: the embedded etcd serves only TLS with client certificates; use https://"},
		{"no CA", func(c *datastore.EmbeddedConfig) { c.CAFile = "" }, "no CA certificate file"},
		{"no server key", func(c *datastore.EmbeddedConfig) { c.ServerKeyFile = "" }, "no server key file"},
		{"no peer certificate", func(c *datastore.EmbeddedConfig) { c.PeerCertFile = "" }, "no peer certificate file"},
		{"client certificate as peer certificate", func(c *datastore.EmbeddedConfig) {
			f := pki.Paths(filepath.Dir(c.CAFile))
			c.PeerCertFile, c.PeerKeyFile = f.ClientCert, f.ClientKey
		}, `has common name "calyx client", expected "calyx etcd peer"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testnet.EtcdConfig(t)
			tc.edit(&cfg)
			e, err := datastore.StartEmbedded(context.Background(), cfg)
			if err == nil {
				_ = e.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartEmbedded: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestUnreadableKeyError checks the one-line error a user gets who cannot
// read the client key (root can read any file, so a directory stands in
// for an unreadable file).
func TestUnreadableKeyError(t *testing.T) {
	f := testnet.PKI(t)
	bad := filepath.Join(t.TempDir(), "client.key")
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := datastore.New(context.Background(), datastore.Config{CAFile: f.CACert, CertFile: f.ClientCert, KeyFile: bad}, nil)
	if err == nil {
		t.Fatal("New with an unreadable key succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"cannot read etcd client key " + bad + ": ", "--etcd-key-file", "CALYX_ETCD_KEY_FILE", "calyxctl.yaml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans several lines: %q", msg)
	}
}
