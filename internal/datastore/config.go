package datastore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"
)

// Environment variables read by ConfigFromEnv. The same names are used by
// every Calyx binary.
const (
	EnvEndpoints = "CALYX_ETCD_ENDPOINTS"
	EnvCAFile    = "CALYX_ETCD_CA_FILE"
	EnvCertFile  = "CALYX_ETCD_CERT_FILE"
	EnvKeyFile   = "CALYX_ETCD_KEY_FILE"
)

// Defaults.
const (
	// DefaultEndpoint is where a calyx-node's embedded etcd listens.
	DefaultEndpoint = "http://127.0.0.1:2379"
	// DefaultDialTimeout bounds New's first contact with etcd, so that a
	// wrong endpoint fails in seconds rather than hanging.
	DefaultDialTimeout = 5 * time.Second
)

// Config says how to reach etcd. The zero value means the local embedded
// etcd over plain HTTP.
type Config struct {
	// Endpoints are etcd client URLs. Empty means DefaultEndpoint (with
	// https when TLS files are set). An endpoint without a scheme gets
	// http:// or, with TLS, https://.
	Endpoints []string
	// CAFile verifies the server's certificate (empty: system roots).
	// CertFile and KeyFile, set together, authenticate this client.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds the connectivity probe in New (0: 5 s).
	DialTimeout time.Duration
}

// ConfigFromEnv reads CALYX_ETCD_ENDPOINTS (comma-separated),
// CALYX_ETCD_CA_FILE, CALYX_ETCD_CERT_FILE and CALYX_ETCD_KEY_FILE through
// getenv (os.Getenv in a binary, a map in a test).
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := Config{
		Endpoints: splitEndpoints(getenv(EnvEndpoints)),
		CAFile:    strings.TrimSpace(getenv(EnvCAFile)),
		CertFile:  strings.TrimSpace(getenv(EnvCertFile)),
		KeyFile:   strings.TrimSpace(getenv(EnvKeyFile)),
	}
	cfg.Endpoints = cfg.resolvedEndpoints()
	return cfg
}

// splitEndpoints splits a comma-separated list, dropping blanks.
func splitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (c Config) usesTLS() bool { return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" }

// resolvedEndpoints applies the default endpoint and the default scheme.
func (c Config) resolvedEndpoints() []string {
	scheme := "http://"
	if c.usesTLS() {
		scheme = "https://"
	}
	var out []string
	for _, e := range c.Endpoints {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = scheme + e
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		out = []string{scheme + strings.TrimPrefix(DefaultEndpoint, "http://")}
	}
	return out
}

// tlsConfig loads the TLS files, naming whichever one is bad. It returns
// nil when no TLS file is set.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.usesTLS() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading etcd CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("etcd client certificate (%q) and key (%q) must be given together (%s, %s)",
			c.CertFile, c.KeyFile, EnvCertFile, EnvKeyFile)
	}
	if c.CertFile != "" {
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("reading etcd client certificate file: %w", err)
		}
		keyPEM, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading etcd client key file: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("loading etcd client certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
