package datastore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

// pki is a CA with a server and a client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "calyx test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (cert, key string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	cfg := testnet.EtcdConfig(t)
	cfg.ClientURL = fmt.Sprintf("https://127.0.0.1:%d", testnet.FreePorts(t, 1)[0])
	cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile = p.serverCert, p.serverKey, p.ca
	e := testnet.StartEtcdWith(t, cfg)

	// The settings as an operator gives them, through the environment.
	env := map[string]string{
		"CALYX_ETCD_ENDPOINTS": e.Endpoints()[0],
		"CALYX_ETCD_CA_FILE":   p.ca,
		"CALYX_ETCD_CERT_FILE": p.clientCert,
		"CALYX_ETCD_KEY_FILE":  p.clientKey,
	}
	c, err := datastore.New(testCtx(t), datastore.ConfigFromEnv(func(k string) string { return env[k] }), nil)
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
		Endpoints: e.Endpoints(), CAFile: p.ca, DialTimeout: 500 * time.Millisecond,
	}, nil)
	if !datastore.IsUnreachable(err) {
		t.Errorf("New without a client certificate: %v, want IsUnreachable", err)
	}

	// Plain http with TLS files set is a configuration mistake.
	_, err = datastore.New(context.Background(), datastore.Config{
		Endpoints: []string{"http://127.0.0.1:2379"}, CAFile: p.ca,
	}, nil)
	if err == nil || datastore.IsUnreachable(err) {
		t.Errorf("New with http:// and TLS files: %v", err)
	}
}
