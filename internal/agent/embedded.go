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
// first start, reused after; calyxctl and other hosts present its client
// certificate). calyx-node itself talks to it in process (Embedded.Client).
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*datastore.Embedded, error) {
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
		return nil, err
	}
	peerHost, err := datastore.ListenHost("--etcd-listen-peer-url", peerURL)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, pki.DirName)
	files, err := pki.Ensure(dir, pki.Options{Hosts: []string{clientHost, peerHost}})
	if err != nil {
		return nil, fmt.Errorf("preparing the embedded etcd's certificates: %w", err)
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
		return nil, fmt.Errorf("starting embedded etcd: %w", err)
	}
	log.Info("embedded etcd started", "endpoints", emb.Endpoints(), "dataDir", filepath.Join(cfg.DataDir, "etcd"), "pki", dir)
	return emb, nil
}
