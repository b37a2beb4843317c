package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
)

// startEmbedded runs the embedded etcd under cfg.DataDir, serving only TLS
// with client certificates from the PKI in DataDir/etcd-pki (created on
// first start, reused after), and returns it with the configuration of
// calyx-node's own client, which presents the PKI's client certificate.
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*datastore.Embedded, datastore.Config, error) {
	clientURL, peerURL := cfg.EmbeddedClientURL, cfg.EmbeddedPeerURL
	if clientURL == "" {
		clientURL = datastore.DefaultEmbeddedClientURL
	}
	if peerURL == "" {
		peerURL = datastore.DefaultEmbeddedPeerURL
	}
	// The URLs are checked before any file is written.
	clientHost, err := datastore.ListenHost("--etcd-listen-client-url", clientURL)
	if err != nil {
		return nil, datastore.Config{}, err
	}
	peerHost, err := datastore.ListenHost("--etcd-listen-peer-url", peerURL)
	if err != nil {
		return nil, datastore.Config{}, err
	}
	dir := filepath.Join(cfg.DataDir, pki.DirName)
	files, err := pki.Ensure(dir, pki.Options{Hosts: []string{clientHost, peerHost}})
	if err != nil {
		return nil, datastore.Config{}, fmt.Errorf("preparing the embedded etcd's certificates: %w", err)
	}
	if len(files.Issued) > 0 {
		log.Info("embedded etcd certificates written", "dir", dir, "files", files.Issued)
	}
	emb, err := datastore.StartEmbedded(ctx, datastore.EmbeddedConfig{
		DataDir:        filepath.Join(cfg.DataDir, "etcd"),
		Name:           cfg.NodeName,
		ClientURL:      clientURL,
		PeerURL:        peerURL,
		Log:            log,
		ServerCertFile: files.ServerCert,
		ServerKeyFile:  files.ServerKey,
		PeerCertFile:   files.PeerCert,
		PeerKeyFile:    files.PeerKey,
		CAFile:         files.CACert,
	})
	if err != nil {
		return nil, datastore.Config{}, fmt.Errorf("starting embedded etcd: %w", err)
	}
	log.Info("embedded etcd started", "endpoints", emb.Endpoints(), "dataDir", filepath.Join(cfg.DataDir, "etcd"), "pki", dir)
	return emb, datastore.Config{
		Endpoints:   emb.Endpoints(),
		CAFile:      files.CACert,
		CertFile:    files.ClientCert,
		KeyFile:     files.ClientKey,
		DialTimeout: cfg.Etcd.DialTimeout,
	}, nil
}
