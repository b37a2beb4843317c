package datastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"sigs.k8s.io/yaml"
)

// Environment variables Resolve reads. Every Calyx binary uses the same
// names.
const (
	EnvEndpoints = "CALYX_ETCD_ENDPOINTS"
	EnvCAFile    = "CALYX_ETCD_CA_FILE"
	EnvCertFile  = "CALYX_ETCD_CERT_FILE"
	EnvKeyFile   = "CALYX_ETCD_KEY_FILE"
)

// DefaultConfigFile is where calyxctl looks for its settings when no flag
// or environment variable gives them.
const DefaultConfigFile = "/etc/calyx/calyxctl.yaml"

// Settings are datastore settings as one source gives them: Endpoints is a
// comma-separated list; an empty field is unset.
type Settings struct {
	Endpoints, CAFile, CertFile, KeyFile string
}

func (s Settings) empty() bool { return s == Settings{} }

// Sources are everything the datastore settings may come from, in the
// order Resolve consults them.
type Sources struct {
	// Flags are the --etcd-* command-line flags.
	Flags Settings
	// Getenv reads CALYX_ETCD_*; nil: no environment.
	Getenv func(string) string
	// ConfigFile is a calyxctl.yaml to read; empty: none. A missing file
	// is an error only when ConfigFileExplicit (the user named it).
	ConfigFile         string
	ConfigFileExplicit bool
	// ReadFile reads ConfigFile (os.ReadFile in a binary).
	ReadFile func(string) ([]byte, error)
	// Default is the whole configuration used when no source sets
	// anything: calyxctl's local calyx-node, or calyx-node's embedded etcd
	// (no endpoints).
	Default Config
}

// Resolve merges the datastore settings, field by field: a flag wins over
// the environment, which wins over the config file. When no source sets
// any field, the result is src.Default. This is the only place Calyx's
// binaries turn flags, environment and files into a Config.
func Resolve(src Sources) (Config, error) {
	var file Settings
	if src.ConfigFile != "" {
		var err error
		if file, err = readSettingsFile(src.ConfigFile, src.ConfigFileExplicit, src.ReadFile); err != nil {
			return Config{}, err
		}
	}
	var env Settings
	if src.Getenv != nil {
		env = Settings{
			Endpoints: src.Getenv(EnvEndpoints),
			CAFile:    src.Getenv(EnvCAFile),
			CertFile:  src.Getenv(EnvCertFile),
			KeyFile:   src.Getenv(EnvKeyFile),
		}
	}
	pick := func(get func(Settings) string) string {
		for _, s := range []Settings{src.Flags, env, file} {
			if v := strings.TrimSpace(get(s)); v != "" {
				return v
			}
		}
		return ""
	}
	merged := Settings{
		Endpoints: pick(func(s Settings) string { return splitJoin(s.Endpoints) }),
		CAFile:    pick(func(s Settings) string { return s.CAFile }),
		CertFile:  pick(func(s Settings) string { return s.CertFile }),
		KeyFile:   pick(func(s Settings) string { return s.KeyFile }),
	}
	if merged.empty() {
		return src.Default, nil
	}
	return Config{
		Endpoints: splitEndpoints(merged.Endpoints),
		CAFile:    merged.CAFile,
		CertFile:  merged.CertFile,
		KeyFile:   merged.KeyFile,
	}, nil
}

// splitJoin normalises a comma-separated list so that one of blanks only
// counts as unset.
func splitJoin(s string) string { return strings.Join(splitEndpoints(s), ",") }

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

// settingsFile is the calyxctl.yaml document:
//
//	apiVersion: calyx.dev/v1
//	kind: CalyxctlConfig
//	spec:
//	  etcdEndpoints: https://10.0.0.1:2379,https://10.0.0.2:2379
//	  etcdCACertFile: /etc/calyx/ca.crt
//	  etcdCertFile: /etc/calyx/client.crt
//	  etcdKeyFile: /etc/calyx/client.key
type settingsFile struct {
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

func readSettingsFile(path string, explicit bool, readFile func(string) ([]byte, error)) (Settings, error) {
	data, err := readFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return Settings{}, nil
		}
		return Settings{}, fmt.Errorf("reading config file %s: %w", path, err)
	}
	var fc settingsFile
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Settings{}, fmt.Errorf("%s: not valid YAML: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return Settings{}, fmt.Errorf("%s: %w (expected apiVersion, kind: CalyxctlConfig and spec.etcdEndpoints, spec.etcdCACertFile, spec.etcdCertFile, spec.etcdKeyFile)", path, err)
	}
	if fc.Kind != "" && fc.Kind != "CalyxctlConfig" {
		return Settings{}, fmt.Errorf("%s: kind: %q is not CalyxctlConfig", path, fc.Kind)
	}
	return Settings{
		Endpoints: fc.Spec.EtcdEndpoints,
		CAFile:    fc.Spec.EtcdCACertFile,
		CertFile:  fc.Spec.EtcdCertFile,
		KeyFile:   fc.Spec.EtcdKeyFile,
	}, nil
}
