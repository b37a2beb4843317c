package testnet_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

// writeCert writes a certificate for 127.0.0.1 signed by ca (nil:
// self-signed CA) and its key under dir, returning their paths.
func writeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, isCA bool) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage, tmpl.IPAddresses = nil, nil
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, cert, key
}

// The cluster helper runs etcd with client and peer TLS, and its
// ClientConfig connects with the client certificate.
func TestEtcdClusterTLS(t *testing.T) {
	dir := t.TempDir()
	caPath, _, ca, caKey := writeCert(t, dir, "ca", nil, nil, true)
	serverCert, serverKey, _, _ := writeCert(t, dir, "server", ca, caKey, false)
	peerCert, peerKey, _, _ := writeCert(t, dir, "peer", ca, caKey, false)
	clientCert, clientKey, _, _ := writeCert(t, dir, "client", ca, caKey, false)
	c := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{TLS: &testnet.EtcdClusterTLS{
		CAFile: caPath, ServerCertFile: serverCert, ServerKeyFile: serverKey,
		PeerCertFile: peerCert, PeerKeyFile: peerKey, ClientCertFile: clientCert, ClientKeyFile: clientKey,
	}})
	for _, ep := range c.Endpoints() {
		if ep[:8] != "https://" {
			t.Errorf("endpoint %s: want https", ep)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := datastore.New(ctx, c.ClientConfig(), nil)
	if err != nil {
		t.Fatalf("connecting with the client certificate: %v", err)
	}
	defer cl.Close()
	if h := cl.Check(ctx, 5*time.Second); h.State != datastore.HealthOK {
		t.Errorf("health %v (%v), want ok", h.State, h.Err)
	}
	// Without a client certificate, etcd refuses the client.
	noCert := c.ClientConfig()
	noCert.CertFile, noCert.KeyFile, noCert.DialTimeout = "", "", 2*time.Second
	if cl2, err := datastore.New(ctx, noCert, nil); err == nil {
		_ = cl2.Close()
		t.Error("etcd accepted a client without a certificate")
	}
}
