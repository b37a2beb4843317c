// Package pki creates and keeps the certificate authority and certificates
// that secure calyx-node's embedded etcd.
//
// Why: the embedded etcd holds every address, endpoint and policy of the
// cluster; served over plain http, any local user (and, on a LAN address,
// any host) could read and rewrite all of it. Serving only TLS with client
// certificates closes that door, but an operator should not have to run a
// CA by hand to get a single host going. So calyx-node makes a small
// private CA on first start and issues from it: a server certificate for
// the client port, a peer certificate for the peer port (used as both TLS
// server and client, as etcd members dial each other), and one client
// certificate that calyx-node, calyxctl and joining hosts present.
//
// How: Ensure loads what exists under a directory and creates only what is
// missing, so later starts reuse the same CA and certificates (copies given
// to other hosts stay valid). When the server or peer certificate no longer
// covers the host names and addresses asked for (the listen address
// changed) or is about to expire, those two are reissued from the existing
// CA and Files.Issued says so. Keys are ECDSA P-256, mode 0600, in a
// directory of mode 0700.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/calyx-net/calyx/internal/atomicfile"
)

// File names under the directory.
const (
	CACertName     = "ca.crt"
	CAKeyName      = "ca.key"
	ServerCertName = "server.crt"
	ServerKeyName  = "server.key"
	PeerCertName   = "peer.crt"
	PeerKeyName    = "peer.key"
	ClientCertName = "client.crt"
	ClientKeyName  = "client.key"
)

// Lifetimes and the renewal margin.
const (
	caLifetime   = 20 * 365 * 24 * time.Hour
	leafLifetime = 10 * 365 * 24 * time.Hour
	// renewBefore: a server or peer certificate that expires sooner than
	// this is reissued at start.
	renewBefore = 30 * 24 * time.Hour
)

// PeerCommonName is the subject common name of the peer certificate. The
// embedded etcd's peer port accepts only certificates with this name, so
// that the client certificate, of which every joining host holds a copy,
// does not make its holder an etcd member.
const PeerCommonName = "calyx etcd peer"

// DirName is the PKI directory's name under calyx-node's data directory.
const DirName = "etcd-pki"

// Options tunes Ensure. The zero value is usable.
type Options struct {
	// Hosts are extra subject alternative names for the server and peer
	// certificates: host names and IP addresses (without ports), typically
	// the listen addresses. 127.0.0.1, ::1, localhost and the host name are
	// always included.
	Hosts []string
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Files are the paths of the PKI's files.
type Files struct {
	Dir                   string
	CACert, CAKey         string
	ServerCert, ServerKey string
	PeerCert, PeerKey     string
	ClientCert, ClientKey string
	// Issued names the files Ensure wrote on this call (e.g. "ca.crt",
	// "server.crt"), in the order written; empty when everything was
	// reused.
	Issued []string
}

// Paths returns the file paths under dir without reading or creating
// anything.
func Paths(dir string) Files {
	j := func(n string) string { return filepath.Join(dir, n) }
	return Files{
		Dir:    dir,
		CACert: j(CACertName), CAKey: j(CAKeyName),
		ServerCert: j(ServerCertName), ServerKey: j(ServerKeyName),
		PeerCert: j(PeerCertName), PeerKey: j(PeerKeyName),
		ClientCert: j(ClientCertName), ClientKey: j(ClientKeyName),
	}
}

// Ensure loads the CA and certificates under dir, creating any that are
// missing on first start (dir 0700, keys 0600). A server or peer
// certificate that does not cover the requested hosts, expires within 30
// days, or was not issued by the CA is reissued; so is a client
// certificate that is expired or not issued by the CA. Without a CA
// (neither ca.crt nor ca.key) everything is created anew; one of the two
// without the other is an error.
func Ensure(dir string, opts Options) (*Files, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting PKI directory: %w", err)
	}
	f := Paths(dir)
	ca, err := f.ensureCA(opts.Now())
	if err != nil {
		return nil, err
	}
	hosts := sanHosts(opts.Hosts)
	now := opts.Now()
	for _, l := range []struct {
		cert, key string
		usage     []x509.ExtKeyUsage
		cn        string
		hosts     []string
	}{
		{f.ServerCert, f.ServerKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "calyx etcd server", hosts},
		{f.PeerCert, f.PeerKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, PeerCommonName, hosts},
		{f.ClientCert, f.ClientKey, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "calyx client", nil},
	} {
		if leafUsable(l.cert, l.key, ca.cert, l.hosts, now) {
			continue
		}
		if err := ca.issue(l.cert, l.key, l.cn, l.usage, l.hosts, now); err != nil {
			return nil, err
		}
		f.Issued = append(f.Issued, filepath.Base(l.cert), filepath.Base(l.key))
	}
	f.Issued = append(ca.issued, f.Issued...)
	return &f, nil
}

// authority is a loaded or new CA.
type authority struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	issued []string // files written while ensuring it
}

func (f Files) ensureCA(now time.Time) (*authority, error) {
	_, certErr := os.Stat(f.CACert)
	_, keyErr := os.Stat(f.CAKey)
	switch {
	case certErr == nil && keyErr == nil:
		return loadCA(f.CACert, f.CAKey)
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr == nil:
		return nil, fmt.Errorf("PKI in %s: %s exists but %s does not (restore it, or delete %s and every certificate to start a new CA)",
			f.Dir, CACertName, CAKeyName, CACertName)
	case keyErr == nil:
		return nil, fmt.Errorf("PKI in %s: %s exists but %s does not (restore it, or delete %s to start a new CA)",
			f.Dir, CAKeyName, CACertName, CAKeyName)
	default:
		return nil, fmt.Errorf("checking CA files in %s: %w", f.Dir, errors.Join(certErr, keyErr))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "calyx etcd CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	// The key first: a crash between the two writes leaves a key without a
	// certificate, which the next start reports rather than silently
	// replacing a CA whose certificate was already copied elsewhere.
	if err := writeKey(f.CAKey, key); err != nil {
		return nil, err
	}
	if err := writePEM(f.CACert, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	// Any leaf from an earlier CA is useless now; leafUsable will see that
	// they are not signed by this CA and reissue them.
	return &authority{cert: cert, key: key, issued: []string{CACertName, CAKeyName}}, nil
}

func loadCA(certPath, keyPath string) (*authority, error) {
	cert, err := readCert(certPath)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s: not a CA certificate", certPath)
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not belong to CA certificate %s", keyPath, certPath)
	}
	return &authority{cert: cert, key: key}, nil
}

// issue writes a new key and a certificate signed by the CA.
func (a *authority) issue(certPath, keyPath, cn string, usage []x509.ExtKeyUsage, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating key for %s: %w", certPath, err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     minTime(now.Add(leafLifetime), a.cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return fmt.Errorf("creating certificate %s: %w", certPath, err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

// leafUsable reports whether certPath and keyPath hold a matching pair
// signed by ca, valid for at least renewBefore more and covering hosts.
func leafUsable(certPath, keyPath string, ca *x509.Certificate, hosts []string, now time.Time) bool {
	cert, err := readCert(certPath)
	if err != nil {
		return false
	}
	key, err := readKey(keyPath)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return false
	}
	if cert.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// sanHosts is the default names plus extra, de-duplicated, with blanks,
// brackets and unspecified addresses (0.0.0.0, ::) dropped.
func sanHosts(extra []string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, strings.ToLower(h))
	}
	for _, h := range extra {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				continue
			}
			h = ip.String()
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block", path)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate %s: %w", path, err)
	}
	return cert, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("key %s: no PEM EC PRIVATE KEY block", path)
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing key %s: %w", path, err)
	}
	return key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM replaces path atomically, so a crash never leaves half a file.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
