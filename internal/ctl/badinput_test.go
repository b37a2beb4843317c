package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestCalyxctlBadInput checks that each kind of bad input gets a one-line
// error naming the file, document, field and expectation, and that nothing
// from the file is written: apply is all or nothing. It needs only etcd,
// so it runs without root.
func TestCalyxctlBadInput(t *testing.T) {
	ep := testnet.ClientFlags(testnet.StartEtcd(t))
	dir := t.TempDir()
	good := "apiVersion: calyx.dev/v1\nkind: GlobalNetworkSet\nmetadata: {name: canary}\nspec: {nets: [192.0.2.0/28]}\n---\n"
	cases := []struct {
		name string
		doc  string
		want []string // substrings of the error
	}{
		{"malformed yaml", "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: p\nspec: [", []string{"bad.yaml", "document"}},
		{"malformed json", `{"apiVersion": "calyx.dev/v1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": }`, []string{"bad.yaml"}},
		{"unknown kind", "apiVersion: calyx.dev/v1\nkind: Frobnicator\nmetadata: {name: x}\nspec: {}\n", []string{"bad.yaml", "Frobnicator", "IPPool"}},
		{"unknown field", "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.9.0.0/16, blocksize: 26}\n", []string{"bad.yaml", "blocksize"}},
		{"invalid selector", "apiVersion: calyx.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {selector: 'role == ', ingress: [{action: Allow}]}\n", []string{"bad.yaml", "spec.selector"}},
		{"invalid cidr", "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.9.0.0/33}\n", []string{"bad.yaml", "spec.cidr"}},
		{"invalid port", "apiVersion: calyx.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: TCP, destination: {ports: [\"90:80\"]}}]}\n", []string{"bad.yaml", "spec.ingress[0].destination.ports[0]"}},
		{"port without tcp", "apiVersion: calyx.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMP, destination: {ports: [80]}}]}\n", []string{"bad.yaml", "ports"}},
		{"overlapping pools", "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.9.0.0/16}\n---\napiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: b}\nspec: {cidr: 10.9.128.0/17}\n", []string{"bad.yaml", "document 3", "10.9.0.0/16", "10.9.128.0/17"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(good+tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := run(t, ep, "", "apply", "-f", path)
			if err == nil {
				t.Fatalf("apply succeeded: %s", out)
			}
			// calyxctl prints the error as its one line on stderr.
			if msg := err.Error(); strings.Contains(msg, "\n") || errOut != "" {
				t.Errorf("error is not one line: %q, stderr %q", msg, errOut)
			}
			wantContains(t, "error", err.Error(), tc.want...)
			if _, _, err := run(t, ep, "", "get", "gns", "canary"); err == nil {
				t.Errorf("the good document before the bad one was written")
			}
		})
	}

	t.Run("unreachable etcd", func(t *testing.T) {
		dead := fmt.Sprintf("https://127.0.0.1:%d", testnet.FreePorts(t, 1)[0])
		conn := append([]string{"--etcd-endpoints", dead}, ep[2:]...) // the same certificates
		_, _, err := run(t, conn, "", "get", "pools")
		if err == nil {
			t.Fatal("get against a dead endpoint succeeded")
		}
		wantContains(t, "unreachable error", err.Error(), dead, "CALYX_ETCD_ENDPOINTS")
	})

	t.Run("unknown kind argument", func(t *testing.T) {
		_, _, err := run(t, ep, "", "get", "frobs")
		if err == nil {
			t.Fatal("get frobs succeeded")
		}
		wantContains(t, "error", err.Error(), "frobs", "GlobalNetworkPolicy")
	})
}
