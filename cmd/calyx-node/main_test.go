package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/datastore"
)

func TestResolveEtcd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   datastore.Settings
		env     map[string]string
		want    datastore.Config
		wantErr string
	}{
		{name: "nothing: embedded etcd", want: datastore.Config{}},
		{name: "env", env: map[string]string{"CALYX_ETCD_ENDPOINTS": "https://e:2379", "CALYX_ETCD_CA_FILE": "/env/ca.crt"},
			want: datastore.Config{Endpoints: []string{"https://e:2379"}, CAFile: "/env/ca.crt"}},
		{name: "flag beats env", flags: datastore.Settings{Endpoints: "https://f:2379", CertFile: "/f/client.crt", KeyFile: "/f/client.key"},
			env:  map[string]string{"CALYX_ETCD_ENDPOINTS": "https://e:2379", "CALYX_ETCD_CA_FILE": "/env/ca.crt", "CALYX_ETCD_KEY_FILE": "/env/client.key"},
			want: datastore.Config{Endpoints: []string{"https://f:2379"}, CAFile: "/env/ca.crt", CertFile: "/f/client.crt", KeyFile: "/f/client.key"}},
		{name: "TLS files without endpoints", flags: datastore.Settings{CAFile: "/f/ca.crt"}, wantErr: "without --etcd-endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveEtcd(tc.flags, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
