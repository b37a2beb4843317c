package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/calyx-net/calyx/internal/datastore"
)

// DefaultConfigFile is where calyxctl looks for its settings when no
// flag or environment variable gives them.
const DefaultConfigFile = "/etc/calyx/calyxctl.yaml"

// fileConfig is the calyxctl.yaml document:
//
//	apiVersion: calyx.dev/v1
//	kind: CalyxctlConfig
//	spec:
//	  etcdEndpoints: http://10.0.0.1:2379,http://10.0.0.2:2379
//	  etcdCACertFile: /etc/calyx/ca.pem
//	  etcdCertFile: /etc/calyx/cert.pem
//	  etcdKeyFile: /etc/calyx/key.pem
type fileConfig struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Spec       struct {
		EtcdEndpoints  string `json:"etcdEndpoints,omitempty"`
		EtcdCACertFile string `json:"etcdCACertFile,omitempty"`
		EtcdCertFile   string `json:"etcdCertFile,omitempty"`
		EtcdKeyFile    string `json:"etcdKeyFile,omitempty"`
	} `json:"spec"`
}

// connFlags are the datastore flags every command shares.
type connFlags struct {
	configFile string
	endpoints  string
	caFile     string
	certFile   string
	keyFile    string
}

// resolveConfig merges the datastore settings: flags win over CALYX_ETCD_*
// environment variables, which win over the config file; with none of
// them, etcd on 127.0.0.1:2379 (calyx-node's embedded etcd).
func resolveConfig(f connFlags, getenv func(string) string, readFile func(string) ([]byte, error)) (datastore.Config, error) {
	var cfg datastore.Config
	path := f.configFile
	explicit := path != ""
	if path == "" {
		path = DefaultConfigFile
	}
	data, err := readFile(path)
	switch {
	case err == nil:
		fc, err := parseFileConfig(path, data)
		if err != nil {
			return cfg, err
		}
		cfg.Endpoints = splitList(fc.Spec.EtcdEndpoints)
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = fc.Spec.EtcdCACertFile, fc.Spec.EtcdCertFile, fc.Spec.EtcdKeyFile
	case explicit || !errors.Is(err, fs.ErrNotExist):
		return cfg, fmt.Errorf("reading config file %s: %w", path, err)
	}
	env := datastore.ConfigFromEnv(getenv)
	if getenv("CALYX_ETCD_ENDPOINTS") != "" {
		cfg.Endpoints = env.Endpoints
	}
	overlay(&cfg.CAFile, getenv("CALYX_ETCD_CA_FILE"))
	overlay(&cfg.CertFile, getenv("CALYX_ETCD_CERT_FILE"))
	overlay(&cfg.KeyFile, getenv("CALYX_ETCD_KEY_FILE"))
	if f.endpoints != "" {
		cfg.Endpoints = splitList(f.endpoints)
	}
	overlay(&cfg.CAFile, f.caFile)
	overlay(&cfg.CertFile, f.certFile)
	overlay(&cfg.KeyFile, f.keyFile)
	if len(cfg.Endpoints) == 0 {
		cfg.Endpoints = env.Endpoints // the default
	}
	return cfg, nil
}

func parseFileConfig(path string, data []byte) (fileConfig, error) {
	var fc fileConfig
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fc, fmt.Errorf("%s: not valid YAML: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("%s: %w (expected apiVersion, kind: CalyxctlConfig and spec.etcdEndpoints, spec.etcdCACertFile, spec.etcdCertFile, spec.etcdKeyFile)", path, err)
	}
	if fc.Kind != "" && fc.Kind != "CalyxctlConfig" {
		return fc, fmt.Errorf("%s: kind: %q is not CalyxctlConfig", path, fc.Kind)
	}
	return fc, nil
}

func overlay(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// osReadFile is the real file reader; tests pass their own.
func osReadFile(p string) ([]byte, error) { return os.ReadFile(p) }
