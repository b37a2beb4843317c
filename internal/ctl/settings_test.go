package ctl

import (
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/datastore"
)

func TestResolveConfig(t *testing.T) {
	file := []byte("apiVersion: calyx.dev/v1\nkind: CalyxctlConfig\nspec:\n  etcdEndpoints: https://file-a:2379, https://file-b:2379\n  etcdCACertFile: /file/ca.pem\n")
	for _, tc := range []struct {
		name    string
		flags   connFlags
		env     map[string]string
		files   map[string][]byte
		want    datastore.Config
		wantErr string
	}{
		{name: "defaults: the local calyx-node's etcd and PKI", want: datastore.Config{Endpoints: []string{"https://127.0.0.1:2379"},
			CAFile: "/var/lib/calyx/etcd-pki/ca.crt", CertFile: "/var/lib/calyx/etcd-pki/client.crt", KeyFile: "/var/lib/calyx/etcd-pki/client.key"}},
		{name: "file", files: map[string][]byte{DefaultConfigFile: file},
			want: datastore.Config{Endpoints: []string{"https://file-a:2379", "https://file-b:2379"}, CAFile: "/file/ca.pem"}},
		{name: "env beats file", files: map[string][]byte{DefaultConfigFile: file},
			env:  map[string]string{"CALYX_ETCD_ENDPOINTS": "https://env:2379", "CALYX_ETCD_KEY_FILE": "/env/key.pem"},
			want: datastore.Config{Endpoints: []string{"https://env:2379"}, CAFile: "/file/ca.pem", KeyFile: "/env/key.pem"}},
		{name: "flags beat env", flags: connFlags{Settings: datastore.Settings{Endpoints: "https://flag:2379", CAFile: "/flag/ca.pem"}},
			env:  map[string]string{"CALYX_ETCD_ENDPOINTS": "https://env:2379", "CALYX_ETCD_CA_FILE": "/env/ca.pem"},
			want: datastore.Config{Endpoints: []string{"https://flag:2379"}, CAFile: "/flag/ca.pem"}},
		{name: "explicit file missing", flags: connFlags{configFile: "/nope.yaml"}, wantErr: "/nope.yaml"},
		{name: "unknown field in file", files: map[string][]byte{DefaultConfigFile: []byte("kind: CalyxctlConfig\nspec:\n  etcdEndpoint: x\n")},
			wantErr: "etcdEndpoint"},
		{name: "wrong kind in file", files: map[string][]byte{DefaultConfigFile: []byte("kind: Other\nspec: {}\n")},
			wantErr: "CalyxctlConfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			read := func(p string) ([]byte, error) {
				if b, ok := tc.files[p]; ok {
					return b, nil
				}
				return nil, fs.ErrNotExist
			}
			got, err := resolveConfig(tc.flags, getenv, read)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{30 * time.Second, "30s"}, {5 * time.Minute, "5m"}, {3 * time.Hour, "3h"}, {72 * time.Hour, "3d"}, {-time.Minute, "0s"},
	} {
		if got := age(now.Add(-tc.ago).Format(time.RFC3339), now); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.ago, got, tc.want)
		}
	}
	if got := age("not a time", now); got != "" {
		t.Errorf("age of garbage = %q", got)
	}
}

func TestLookupKindError(t *testing.T) {
	if _, err := lookupKind("GNP"); err != nil {
		t.Fatal(err)
	}
	_, err := lookupKind("frob")
	if err == nil || !strings.Contains(err.Error(), "IPPool") {
		t.Fatalf("err = %v", err)
	}
}
