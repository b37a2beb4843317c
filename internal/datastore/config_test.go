package datastore_test

import (
	"context"
	"fmt"
	"io/fs"
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

func TestResolve(t *testing.T) {
	file := []byte("apiVersion: calyx.dev/v1\nkind: CalyxctlConfig\nspec:\n" +
		"  etcdEndpoints: https://file-a:2379, https://file-b:2379\n  etcdCACertFile: /file/ca.crt\n  etcdKeyFile: /file/client.key\n")
	const path = "/etc/calyx/calyxctl.yaml"
	local := datastore.Config{Endpoints: []string{"https://127.0.0.1:2379"}, CAFile: "/pki/ca.crt", CertFile: "/pki/client.crt", KeyFile: "/pki/client.key"}
	for _, tc := range []struct {
		name     string
		flags    datastore.Settings
		env      map[string]string
		files    map[string][]byte
		noFile   bool // calyx-node: no config file
		explicit bool
		def      datastore.Config
		want     datastore.Config
		wantErr  string
	}{
		{name: "nothing set: the default", def: local, want: local},
		{name: "nothing set, no default (calyx-node: embedded)", noFile: true, want: datastore.Config{}},
		{name: "blank list is unset", env: map[string]string{"CALYX_ETCD_ENDPOINTS": " , ,"}, def: local, want: local},
		{name: "file", files: map[string][]byte{path: file}, def: local,
			want: datastore.Config{Endpoints: []string{"https://file-a:2379", "https://file-b:2379"}, CAFile: "/file/ca.crt", KeyFile: "/file/client.key"}},
		{name: "env beats file, field by field", files: map[string][]byte{path: file}, def: local,
			env:  map[string]string{"CALYX_ETCD_ENDPOINTS": " https://env-1:2379 ,https://env-2:2379,", "CALYX_ETCD_KEY_FILE": "/env/client.key"},
			want: datastore.Config{Endpoints: []string{"https://env-1:2379", "https://env-2:2379"}, CAFile: "/file/ca.crt", KeyFile: "/env/client.key"}},
		{name: "flags beat env and file", files: map[string][]byte{path: file}, def: local,
			flags: datastore.Settings{Endpoints: "https://flag:2379", CAFile: "/flag/ca.crt"},
			env:   map[string]string{"CALYX_ETCD_ENDPOINTS": "https://env:2379", "CALYX_ETCD_CA_FILE": "/env/ca.crt", "CALYX_ETCD_CERT_FILE": "/env/client.crt"},
			want:  datastore.Config{Endpoints: []string{"https://flag:2379"}, CAFile: "/flag/ca.crt", CertFile: "/env/client.crt", KeyFile: "/file/client.key"}},
		{name: "calyx-node ignores calyxctl.yaml", noFile: true, files: map[string][]byte{path: file},
			env:  map[string]string{"CALYX_ETCD_ENDPOINTS": "https://env:2379"},
			want: datastore.Config{Endpoints: []string{"https://env:2379"}}},
		{name: "explicit file missing", explicit: true, wantErr: path},
		{name: "unknown field in file", files: map[string][]byte{path: []byte("kind: CalyxctlConfig\nspec:\n  etcdEndpoint: x\n")},
			wantErr: "etcdEndpoint"},
		{name: "wrong kind in file", files: map[string][]byte{path: []byte("kind: Other\nspec: {}\n")},
			wantErr: "CalyxctlConfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := datastore.Sources{
				Flags:              tc.flags,
				Getenv:             func(k string) string { return tc.env[k] },
				ConfigFile:         path,
				ConfigFileExplicit: tc.explicit,
				ReadFile: func(p string) ([]byte, error) {
					if b, ok := tc.files[p]; ok {
						return b, nil
					}
					return nil, fs.ErrNotExist
				},
				Default: tc.def,
			}
			if tc.noFile {
				src.ConfigFile = ""
			}
			got, err := datastore.Resolve(src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
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
	cfg.ClientURL = "https://" + l.Addr().String()
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
