package ctl

import (
	"os"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/pki"
)

// DefaultConfigFile is where calyxctl looks for its settings when no
// flag or environment variable gives them.
const DefaultConfigFile = datastore.DefaultConfigFile

// DefaultPKIDir is where a calyx-node with the default --data-dir keeps
// its embedded etcd's CA and certificates.
const DefaultPKIDir = "/var/lib/calyx/" + pki.DirName

// connFlags are the datastore flags every command shares.
type connFlags struct {
	configFile string
	datastore.Settings
}

// localDefault is what calyxctl uses with no settings at all: the embedded
// etcd of a calyx-node on this host, with its client certificate, so that
// root on a single host needs no set-up.
func localDefault() datastore.Config {
	f := pki.Paths(DefaultPKIDir)
	return datastore.Config{
		Endpoints: []string{datastore.DefaultEndpoint},
		CAFile:    f.CACert,
		CertFile:  f.ClientCert,
		KeyFile:   f.ClientKey,
	}
}

// resolveConfig hands calyxctl's sources to datastore.Resolve: flags, then
// CALYX_ETCD_*, then the config file, then localDefault.
func resolveConfig(f connFlags, getenv func(string) string, readFile func(string) ([]byte, error)) (datastore.Config, error) {
	path := f.configFile
	if path == "" {
		path = DefaultConfigFile
	}
	return datastore.Resolve(datastore.Sources{
		Flags:              f.Settings,
		Getenv:             getenv,
		ConfigFile:         path,
		ConfigFileExplicit: f.configFile != "",
		ReadFile:           readFile,
		Default:            localDefault(),
	})
}

// osReadFile is the real file reader; tests pass their own.
func osReadFile(p string) ([]byte, error) { return os.ReadFile(p) }
