package datastore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/google/go-cmp/cmp"
)

func TestConfigFromEnv(t *testing.T) {
	tlsEnv := map[string]string{
		"CALYX_ETCD_CA_FILE":   "/etc/calyx/ca.pem",
		"CALYX_ETCD_CERT_FILE": "/etc/calyx/cert.pem",
		"CALYX_ETCD_KEY_FILE":  "/etc/calyx/key.pem",
	}
	withTLS := func(env map[string]string) map[string]string {
		for k, v := range tlsEnv {
			env[k] = v
		}
		return env
	}
	tlsFiles := datastore.Config{CAFile: "/etc/calyx/ca.pem", CertFile: "/etc/calyx/cert.pem", KeyFile: "/etc/calyx/key.pem"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want datastore.Config
	}{
		{"nothing set", map[string]string{}, datastore.Config{Endpoints: []string{"http://127.0.0.1:2379"}}},
		{"blank list", map[string]string{"CALYX_ETCD_ENDPOINTS": " , ,"}, datastore.Config{Endpoints: []string{"http://127.0.0.1:2379"}}},
		{"two endpoints with spaces", map[string]string{"CALYX_ETCD_ENDPOINTS": " http://10.0.0.1:2379 ,http://10.0.0.2:2379,"},
			datastore.Config{Endpoints: []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}}},
		{"no scheme", map[string]string{"CALYX_ETCD_ENDPOINTS": "10.0.0.1:2379"},
			datastore.Config{Endpoints: []string{"http://10.0.0.1:2379"}}},
		{"TLS without endpoints", withTLS(map[string]string{}),
			datastore.Config{Endpoints: []string{"https://127.0.0.1:2379"}, CAFile: tlsFiles.CAFile, CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile}},
		{"TLS, no scheme", withTLS(map[string]string{"CALYX_ETCD_ENDPOINTS": "etcd-1:2379,https://etcd-2:2379"}),
			datastore.Config{Endpoints: []string{"https://etcd-1:2379", "https://etcd-2:2379"}, CAFile: tlsFiles.CAFile, CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := datastore.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ConfigFromEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	ports := testnet.FreePorts(t, 2) // nothing listens on them
	eps := []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	_, err := datastore.New(context.Background(), datastore.Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond}, nil)
	if !datastore.IsUnreachable(err) {
		t.Fatalf("New against dead endpoints: %v, want IsUnreachable", err)
	}
	want := "etcd at " + eps[0] + ", " + eps[1] + " unreachable: context deadline exceeded (set --etcd-endpoints or CALYX_ETCD_ENDPOINTS; " +
		"for TLS also CALYX_ETCD_CA_FILE, CALYX_ETCD_CERT_FILE, CALYX_ETCD_KEY_FILE)"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
}

func TestNewBadTLSSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing-ca.pem")
	for _, tc := range []struct {
		name string
		cfg  datastore.Config
		want string
	}{
		{"missing CA file", datastore.Config{CAFile: missing}, missing},
		{"CA file without certificates", datastore.Config{CAFile: notPEM}, notPEM},
		{"missing client certificate", datastore.Config{CertFile: filepath.Join(dir, "c.pem"), KeyFile: notPEM}, "c.pem"},
		{"missing client key", datastore.Config{CertFile: notPEM, KeyFile: filepath.Join(dir, "k.pem")}, "k.pem"},
		{"certificate without key", datastore.Config{CertFile: notPEM}, "CALYX_ETCD_KEY_FILE"},
		{"bad pair", datastore.Config{CertFile: notPEM, KeyFile: notPEM}, notPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := datastore.New(context.Background(), tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || datastore.IsUnreachable(err) {
				t.Errorf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testnet.EtcdConfig(t)
	cfg.ClientURL = "http://" + l.Addr().String()
	_, err = datastore.StartEmbedded(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), cfg.ClientURL+" is already in use") {
		t.Fatalf("StartEmbedded on a taken port: %v", err)
	}
}

// recordHandler keeps the messages of the records it is given.
type recordHandler struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.msgs = append(*h.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func TestEmbeddedIsQuiet(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	cfg := testnet.EtcdConfig(t)
	cfg.Log = slog.New(recordHandler{mu: &mu, msgs: &msgs})
	e, err := datastore.StartEmbedded(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := testnet.NewClient(t, e)
	mustCreate(t, c, pool("a", "10.0.0.0/16", nil))
	_ = c.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var loud []string
	for _, m := range msgs {
		if !strings.HasPrefix(m, "DEBUG") && !strings.HasPrefix(m, "INFO") {
			loud = append(loud, m)
		}
	}
	if len(loud) > 0 {
		t.Errorf("a normal start and stop logged:\n%s", strings.Join(loud, "\n"))
	}
}
