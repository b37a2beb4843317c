package testnet

import (
	"path/filepath"
	"testing"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
)

// PKI makes a fresh CA with server, peer and client certificates in
// t.TempDir(), as calyx-node makes under <data-dir>/etcd-pki. ECDSA keys
// are cheap, so every call makes its own.
func PKI(t testing.TB) *pki.Files {
	t.Helper()
	f, err := pki.Ensure(filepath.Join(t.TempDir(), "etcd-pki"), pki.Options{})
	if err != nil {
		t.Fatalf("creating test PKI: %v", err)
	}
	return f
}

// ClientConfig is how a client reaches e: its endpoints with the client
// certificate of the PKI e was started with (the files beside its CA, as
// PKI and EtcdConfig lay them out).
func ClientConfig(e *datastore.Embedded) datastore.Config {
	f := pki.Paths(filepath.Dir(e.Config().CAFile))
	return datastore.Config{Endpoints: e.Endpoints(), CAFile: f.CACert, CertFile: f.ClientCert, KeyFile: f.ClientKey}
}

// ClientFlags are the calyxctl / calyx-node flags that reach e.
func ClientFlags(e *datastore.Embedded) []string {
	c := ClientConfig(e)
	return []string{"--etcd-endpoints", e.Endpoints()[0], "--etcd-ca-file", c.CAFile, "--etcd-cert-file", c.CertFile, "--etcd-key-file", c.KeyFile}
}
