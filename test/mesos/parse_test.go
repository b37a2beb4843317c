package mesos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseResult parses plugin output the way the isolator does.
func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		wantIP4   string
		err       string
	}{
		{name: "calyx 0.2.0", out: `{"cniVersion":"0.2.0","ip4":{"ip":"10.65.0.7/32","gateway":"169.254.1.1",
			"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}]},"dns":{}}`, wantIP4: "10.65.0.7/32"},
		{name: "Mesos's own fake plugin", out: `{"cniVersion":"0.2.3","ip4":{"ip":"203.0.113.4/31"}}`, wantIP4: "203.0.113.4/31"},
		{name: "unknown keys ignored", out: `{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.1/32","extra":1},"interfaces":[{"name":"x"}],"foo":{}}`, wantIP4: "10.0.0.1/32"},
		// A 0.3.x+ result parses, but no address reaches Mesos: why the
		// shipped configs say 0.2.0.
		{name: "0.3.1 result", out: `{"cniVersion":"0.3.1","interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.0.0.1/32"}]}`},
		{name: "ip4 without ip", out: `{"ip4":{"gateway":"10.0.0.1"}}`, err: "missing required field ip4.ip"},
		{name: "route without dst", out: `{"ip4":{"ip":"10.0.0.1/32","routes":[{"gw":"10.0.0.1"}]}}`, err: "missing required field ip4.routes.dst"},
		{name: "not JSON", out: `eth0 up`, err: "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResult([]byte(tc.out))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r.IP4 != nil {
				got = r.IP4.IP
			}
			if got != tc.wantIP4 {
				t.Errorf("ip4.ip %q, want %q", got, tc.wantIP4)
			}
		})
	}
}

// TestLoadNetworks skips what Mesos skips: conflists, files without a
// type, and networks whose plugin or IPAM plugin is missing (the
// "calico-ipam not found" trap).
func TestLoadNetworks(t *testing.T) {
	plugins, confs := t.TempDir(), t.TempDir()
	for _, p := range []string{"calyx", "calyx-ipam", "bridge"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"10-calyx.conf":    `{"cniVersion":"0.2.0","name":"calyx","type":"calyx","ipam":{"type":"calyx-ipam"}}`,
		"20-list.conflist": `{"cniVersion":"0.4.0","name":"listed","plugins":[{"type":"calyx"}]}`,
		"30-noipam.conf":   `{"name":"noipam","type":"calyx","ipam":{"type":"calico-ipam"}}`,
		"40-notype.json":   `{"name":"notype"}`,
		"50-dup.conf":      `{"name":"calyx","type":"bridge"}`,
		"60-bridge":        `{"name":"br","type":"bridge","ipam":{"type":"calyx-ipam"}}`,
		"70-garbage.conf":  `not json`,
		"80-missing.conf":  `{"name":"m","type":"macvlan"}`,
		"90-no-ipam.conf":  `{"name":"plain","type":"calyx"}`,
		"95-ipam-typeless": `{"name":"t","type":"calyx","ipam":{}}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(confs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := &Isolator{PluginsDir: "/nonexistent:" + plugins, ConfigDir: confs}
	nets, skipped, err := iso.LoadNetworks()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"calyx": "10-calyx.conf", "br": "60-bridge", "plain": "90-no-ipam.conf"}
	if len(nets) != len(want) {
		t.Errorf("networks %v, want %v", nets, want)
	}
	for n, f := range want {
		if filepath.Base(nets[n]) != f {
			t.Errorf("network %q from %q, want %q", n, nets[n], f)
		}
	}
	joined := strings.Join(skipped, "\n")
	for _, w := range []string{`failed to find IPAM plugin "calico-ipam"`, `failed to find CNI plugin "macvlan"`, `network "calyx" is already defined`, "20-list.conflist: not a network config"} {
		if !strings.Contains(joined, w) {
			t.Errorf("skipped lacks %q:\n%s", w, joined)
		}
	}
}
