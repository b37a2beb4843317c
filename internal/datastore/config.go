package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultEndpoint is where a calyx-node's embedded etcd listens.
	DefaultEndpoint = "https://127.0.0.1:2379"
	// DefaultDialTimeout bounds New's first contact with etcd, so that a
	// wrong endpoint fails in seconds rather than hanging.
	DefaultDialTimeout = 5 * time.Second
)

// Config says how to reach etcd. Resolve builds it from flags,
// environment and calyxctl.yaml.
type Config struct {
	// Endpoints are etcd client URLs. Empty means 127.0.0.1:2379 (https
	// when TLS files are set, else http). An endpoint without a scheme gets
	// http:// or, with TLS, https://.
	Endpoints []string
	// CAFile verifies the server's certificate (empty: system roots).
	// CertFile and KeyFile, set together, authenticate this client.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds the connectivity probe in New (0: 5 s).
	DialTimeout time.Duration
	// Dial, when set, opens the connections to etcd (addr is host:port),
	// e.g. from inside another network namespace; nil: a plain TCP dial.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
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
		out = []string{scheme + strings.TrimPrefix(DefaultEndpoint, "https://")}
	}
	return out
}

// tlsConfig loads the TLS files, naming whichever one is bad. It returns
// nil when no TLS file is set.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.usesTLS() {
		return nil, nil
	}
	// The session cache lets a reconnect (after an etcd restart or a
	// dropped connection) resume the TLS session instead of repeating the
	// full certificate exchange.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	if c.CAFile != "" {
		pem, err := readTLSFile("CA certificate", c.CAFile, "--etcd-ca-file", EnvCAFile, "etcdCACertFile")
		if err != nil {
			return nil, err
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
		certPEM, err := readTLSFile("client certificate", c.CertFile, "--etcd-cert-file", EnvCertFile, "etcdCertFile")
		if err != nil {
			return nil, err
		}
		keyPEM, err := readTLSFile("client key", c.KeyFile, "--etcd-key-file", EnvKeyFile, "etcdKeyFile")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("loading etcd client certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// readTLSFile reads one TLS file. Its error is one line that names the
// file and says how to point Calyx elsewhere: the usual case is a non-root
// user running calyxctl against the root-only keys of the local PKI.
func readTLSFile(what, path, flag, env, fileField string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read etcd %s %s: %w (run as a user who can read it, or point %s, %s or spec.%s in %s at a copy you can read)",
			what, path, unwrapPathError(err), flag, env, fileField, DefaultConfigFile)
	}
	return data, nil
}

// unwrapPathError drops the "open PATH:" prefix the message already has.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
