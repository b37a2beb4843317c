package pki_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/pki"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureCreatesEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-pki")
	f, err := pki.Ensure(dir, pki.Options{Hosts: []string{"10.9.8.7", "etcd.example", "0.0.0.0", ""}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
	for _, k := range []string{f.CAKey, f.ServerKey, f.PeerKey, f.ClientKey} {
		st, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	want := []string{"ca.crt", "ca.key", "server.crt", "server.key", "peer.crt", "peer.key", "client.crt", "client.key"}
	if !slices.Equal(f.Issued, want) {
		t.Errorf("Issued = %v, want %v", f.Issued, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("directory holds %d entries, want %d (no temporary files)", len(entries), len(want))
	}

	ca := readCert(t, f.CACert)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server := readCert(t, f.ServerCert)
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "10.9.8.7", "etcd.example"} {
		if err := server.VerifyHostname(h); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	if host, _ := os.Hostname(); host != "" {
		if err := server.VerifyHostname(strings.ToLower(host)); err != nil {
			t.Errorf("server certificate does not cover the host name: %v", err)
		}
	}
	usage := func(c *x509.Certificate, u x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}})
		return err
	}
	peer := readCert(t, f.PeerCert)
	client := readCert(t, f.ClientCert)
	for _, tc := range []struct {
		name string
		c    *x509.Certificate
		u    x509.ExtKeyUsage
		ok   bool
	}{
		{"server as server", server, x509.ExtKeyUsageServerAuth, true},
		{"server as client", server, x509.ExtKeyUsageClientAuth, false},
		{"peer as server", peer, x509.ExtKeyUsageServerAuth, true},
		{"peer as client", peer, x509.ExtKeyUsageClientAuth, true},
		{"client as client", client, x509.ExtKeyUsageClientAuth, true},
		{"client as server", client, x509.ExtKeyUsageServerAuth, false},
	} {
		if err := usage(tc.c, tc.u); (err == nil) != tc.ok {
			t.Errorf("%s: verify = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestEnsureReusesFiles(t *testing.T) {
	dir := t.TempDir()
	f1, err := pki.Ensure(dir, pki.Options{Hosts: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, p := range []string{f1.CACert, f1.CAKey, f1.ServerCert, f1.ServerKey, f1.PeerCert, f1.ClientCert, f1.ClientKey} {
		before[p], _ = os.ReadFile(p)
	}
	f2, err := pki.Ensure(dir, pki.Options{Hosts: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.Issued) != 0 {
		t.Errorf("second Ensure issued %v, want nothing", f2.Issued)
	}
	for p, b := range before {
		now, _ := os.ReadFile(p)
		if !bytes.Equal(now, b) {
			t.Errorf("%s changed on a second Ensure", p)
		}
	}

	// A new listen address: server and peer are reissued from the same CA;
	// the CA and client certificate stay.
	f3, err := pki.Ensure(dir, pki.Options{Hosts: []string{"10.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"server.crt", "server.key", "peer.crt", "peer.key"}
	if !slices.Equal(f3.Issued, want) {
		t.Errorf("Issued after an address change = %v, want %v", f3.Issued, want)
	}
	for _, p := range []string{f1.CACert, f1.CAKey, f1.ClientCert, f1.ClientKey} {
		now, _ := os.ReadFile(p)
		if !bytes.Equal(now, before[p]) {
			t.Errorf("%s changed on an address change", p)
		}
	}
	if err := readCert(t, f3.ServerCert).CheckSignatureFrom(readCert(t, f1.CACert)); err != nil {
		t.Errorf("reissued server certificate not from the old CA: %v", err)
	}
	if err := readCert(t, f3.ServerCert).VerifyHostname("10.0.0.2"); err != nil {
		t.Error(err)
	}

	// Near expiry (29 days before the leaves' end): reissued.
	late := readCert(t, f3.ServerCert).NotAfter.Add(-29 * 24 * time.Hour)
	f4, err := pki.Ensure(dir, pki.Options{Hosts: []string{"10.0.0.2"}, Now: func() time.Time { return late }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f4.Issued, "server.crt") || slices.Contains(f4.Issued, "ca.crt") {
		t.Errorf("Issued near expiry = %v", f4.Issued)
	}
}

func TestEnsureHalfCA(t *testing.T) {
	dir := t.TempDir()
	f, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.CAKey); err != nil {
		t.Fatal(err)
	}
	_, err = pki.Ensure(dir, pki.Options{})
	if err == nil || !strings.Contains(err.Error(), "ca.key does not") {
		t.Fatalf("Ensure with ca.crt but no ca.key: %v", err)
	}
}

func TestEnsureNewCAReissuesLeaves(t *testing.T) {
	dir := t.TempDir()
	f, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.CACert, f.CAKey} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	f2, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.Issued) != 8 {
		t.Errorf("Issued after deleting the CA = %v, want all eight files", f2.Issued)
	}
	if err := readCert(t, f2.ClientCert).CheckSignatureFrom(readCert(t, f2.CACert)); err != nil {
		t.Errorf("client certificate not from the new CA: %v", err)
	}
}
