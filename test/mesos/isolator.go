// Package mesos is a stand-in for the Mesos agent's network/cni isolator,
// reproducing exactly how it calls a CNI plugin, so that Calyx's plugins
// are tested the way Mesos runs them. Debian has no Mesos package; this is
// apache/mesos src/slave/containerizer/mesos/isolators/network/cni/cni.cpp
// (attach, detach, loadNetworkConfigs) and spec.proto, as described in
// reference/interfaces.md §1:
//
//   - configs are single plugin objects read from one directory, every
//     file, skipped when unparsable or when `type` or `ipam.type` is not in
//     the plugins directory; a .conflist has no top-level type and is
//     skipped;
//   - the plugin's environment is exactly CNI_COMMAND, CNI_CONTAINERID,
//     CNI_PATH, CNI_IFNAME, CNI_NETNS and PATH: no CNI_ARGS;
//   - stdin is the config with args."org.apache.mesos".network_info added,
//     saved to <root>/<cid>/<net>/network.conf before ADD runs and given
//     byte for byte to DEL, which gets no prevResult;
//   - a container's networks are ADDed in parallel as eth0, eth1, ...;
//   - stdout is parsed as spec.NetworkInfo: only ip4, ip6 and dns, unknown
//     keys ignored, ip4.ip and routes[].dst required;
//   - DEL runs for every network.conf, also after a failed ADD or none at
//     all, with CNI_NETNS only while <root>/<cid>/ns is still a namespace
//     mount.
package mesos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// Isolator holds the agent's CNI flags.
type Isolator struct {
	// PluginsDir is --network_cni_plugins_dir: a colon-separated search
	// path, passed verbatim as CNI_PATH.
	PluginsDir string
	// ConfigDir is --network_cni_config_dir.
	ConfigDir string
	// RootDir is <runtime_dir>/isolators/network/cni.
	RootDir string
	// Path is the agent's PATH.
	Path string
	// Start starts a plugin process in the agent's network namespace.
	Start func(cmd *exec.Cmd) error
}

// NetworkInfo is Mesos's NetworkInfo protobuf in its JSON form.
type NetworkInfo struct {
	Name         string        `json:"name,omitempty"`
	Labels       *Labels       `json:"labels,omitempty"`
	PortMappings []PortMapping `json:"port_mappings,omitempty"`
	Groups       []string      `json:"groups,omitempty"`
	IPAddresses  []IPAddress   `json:"ip_addresses,omitempty"`
}

// Labels is mesos.Labels.
type Labels struct {
	Labels []Label `json:"labels"`
}

// Label is mesos.Label.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// PortMapping is NetworkInfo.PortMapping.
type PortMapping struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"`
}

// IPAddress is NetworkInfo.IPAddress.
type IPAddress struct {
	Protocol  string `json:"protocol,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// Result is spec.NetworkInfo: all Mesos reads from a plugin's stdout.
type Result struct {
	IP4 *IPConfig `json:"ip4,omitempty"`
	IP6 *IPConfig `json:"ip6,omitempty"`
	DNS *DNS      `json:"dns,omitempty"`
}

// IPConfig is spec.NetworkInfo.IP.
type IPConfig struct {
	IP      string  `json:"ip"`
	Gateway string  `json:"gateway,omitempty"`
	Routes  []Route `json:"routes,omitempty"`
}

// Route is spec.NetworkInfo.Route.
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// DNS is spec.DNS.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// PluginError is a plugin's non-zero exit, worded as the isolator words it.
type PluginError struct {
	Stdout, Stderr string
	Err            error
}

func (e *PluginError) Error() string {
	return fmt.Sprintf("the CNI plugin failed (%v): stdout='%s', stderr='%s'", e.Err, e.Stdout, e.Stderr)
}

func (e *PluginError) Unwrap() error { return e.Err }

// networkConfig is what loadNetworkConfigs parses of each file.
type networkConfig struct {
	Name string `json:"name"`
	Type string `json:"type"`
	IPAM *struct {
		Type string `json:"type"`
	} `json:"ipam"`
}

// LoadNetworks maps network names to config files, skipping what Mesos
// skips, and says why for each skipped file.
func (i *Isolator) LoadNetworks() (map[string]string, []string, error) {
	entries, err := os.ReadDir(i.ConfigDir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", i.ConfigDir, err)
	}
	nets := map[string]string{}
	var skipped []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(i.ConfigDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		var c networkConfig
		switch {
		case json.Unmarshal(b, &c) != nil || c.Name == "" || c.Type == "" || (c.IPAM != nil && c.IPAM.Type == ""):
			skipped = append(skipped, e.Name()+": not a network config (name, type and ipam.type are required)")
		case i.which(c.Type) == "":
			skipped = append(skipped, fmt.Sprintf("%s: failed to find CNI plugin %q", e.Name(), c.Type))
		case c.IPAM != nil && i.which(c.IPAM.Type) == "":
			skipped = append(skipped, fmt.Sprintf("%s: failed to find IPAM plugin %q", e.Name(), c.IPAM.Type))
		case nets[c.Name] != "":
			skipped = append(skipped, fmt.Sprintf("%s: network %q is already defined", e.Name(), c.Name))
		default:
			nets[c.Name] = path
		}
	}
	return nets, skipped, nil
}

// which is os::which(name, plugins_dir).
func (i *Isolator) which(name string) string {
	for _, dir := range filepath.SplitList(i.PluginsDir) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (i *Isolator) containerDir(cid string) string { return filepath.Join(i.RootDir, cid) }
func (i *Isolator) nsPath(cid string) string       { return filepath.Join(i.RootDir, cid, "ns") }
func (i *Isolator) networkDir(cid, net string) string {
	return filepath.Join(i.RootDir, cid, net)
}

// Attach joins the container, whose namespace is at netns, to the named
// networks: the namespace is bind-mounted to <root>/<cid>/ns, and the ADDs
// run in parallel with interfaces eth0, eth1, ... in the order given.
// It returns each network's parsed result, and the errors joined.
func (i *Isolator) Attach(ctx context.Context, cid, netns string, infos []NetworkInfo) (map[string]*Result, error) {
	if err := os.MkdirAll(i.containerDir(cid), 0o755); err != nil {
		return nil, err
	}
	target := i.nsPath(cid)
	if err := os.WriteFile(target, nil, 0o444); err != nil {
		return nil, err
	}
	if err := syscall.Mount(netns, target, "", syscall.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind-mounting %s to %s: %w", netns, target, err)
	}
	results := map[string]*Result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(infos))
	for n, info := range infos {
		wg.Go(func() {
			r, err := i.attach(ctx, cid, fmt.Sprintf("eth%d", n), info)
			if err != nil {
				errs[n] = fmt.Errorf("attaching to network %q: %w", info.Name, err)
				return
			}
			mu.Lock()
			results[info.Name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

func (i *Isolator) attach(ctx context.Context, cid, ifName string, info NetworkInfo) (*Result, error) {
	nets, _, err := i.LoadNetworks()
	if err != nil {
		return nil, err
	}
	confPath, ok := nets[info.Name]
	if !ok {
		return nil, fmt.Errorf("unknown CNI network %q", info.Name)
	}
	raw, err := os.ReadFile(confPath)
	if err != nil {
		return nil, err
	}
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &conf); err != nil {
		return nil, err
	}
	args := map[string]json.RawMessage{}
	if a, ok := conf["args"]; ok {
		if err := json.Unmarshal(a, &args); err != nil {
			return nil, fmt.Errorf("'args' in the network config is not an object: %w", err)
		}
		if _, reserved := args["org.apache.mesos"]; reserved {
			return nil, errors.New("'args' in the network config has the reserved key 'org.apache.mesos'")
		}
	}
	mesos, err := json.Marshal(map[string]any{"network_info": info})
	if err != nil {
		return nil, err
	}
	args["org.apache.mesos"] = mesos
	if conf["args"], err = json.Marshal(args); err != nil {
		return nil, err
	}
	stdin, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	var typ string
	_ = json.Unmarshal(conf["type"], &typ)
	ifDir := filepath.Join(i.networkDir(cid, info.Name), ifName)
	if err := os.MkdirAll(ifDir, 0o755); err != nil {
		return nil, err
	}
	// Saved before the plugin runs: DEL finds it even if ADD never did.
	if err := os.WriteFile(filepath.Join(i.networkDir(cid, info.Name), "network.conf"), stdin, 0o644); err != nil {
		return nil, err
	}
	env := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid, "CNI_PATH=" + i.PluginsDir,
		"CNI_IFNAME=" + ifName, "CNI_NETNS=" + i.nsPath(cid), "PATH=" + i.Path}
	out, err := i.run(ctx, typ, env, stdin)
	if err != nil {
		return nil, err
	}
	r, err := ParseResult(out)
	if err != nil {
		return nil, fmt.Errorf("parsing the output of the CNI plugin: %w (stdout='%s')", err, out)
	}
	if err := os.WriteFile(filepath.Join(ifDir, "network.info"), out, 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseResult parses stdout as spec.NetworkInfo: ip4, ip6 and dns, every
// other key ignored, ip.ip and routes[].dst required.
func ParseResult(out []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, err
	}
	for fam, ip := range map[string]*IPConfig{"ip4": r.IP4, "ip6": r.IP6} {
		if ip == nil {
			continue
		}
		if ip.IP == "" {
			return nil, fmt.Errorf("missing required field %s.ip", fam)
		}
		for _, rt := range ip.Routes {
			if rt.Dst == "" {
				return nil, fmt.Errorf("missing required field %s.routes.dst", fam)
			}
		}
	}
	return &r, nil
}

// run execs the plugin named typ from the plugins dir with exactly env.
func (i *Isolator) run(ctx context.Context, typ string, env []string, stdin []byte) ([]byte, error) {
	path := i.which(typ)
	if path == "" {
		return nil, fmt.Errorf("failed to find CNI plugin %q in %s", typ, i.PluginsDir)
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := i.Start(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, &PluginError{Stdout: out.String(), Stderr: errb.String(), Err: err}
	}
	return out.Bytes(), nil
}

// Detach runs DEL for every network of the container that has a saved
// network.conf, with CNI_NETNS only while the namespace is still mounted,
// then unmounts it and removes the container's directory. A failed DEL
// leaves the directory for the next attempt, as Mesos does.
func (i *Isolator) Detach(ctx context.Context, cid string) error {
	netEntries, err := os.ReadDir(i.containerDir(cid))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	nsMounted := isNamespace(i.nsPath(cid))
	var errs []error
	for _, ne := range netEntries {
		if !ne.IsDir() {
			continue
		}
		netDir := filepath.Join(i.containerDir(cid), ne.Name())
		stdin, err := os.ReadFile(filepath.Join(netDir, "network.conf"))
		if errors.Is(err, os.ErrNotExist) {
			continue // ADD was never attempted.
		}
		if err != nil {
			return err
		}
		var conf struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(stdin, &conf)
		ifEntries, err := os.ReadDir(netDir)
		if err != nil {
			return err
		}
		var ifNames []string
		for _, ie := range ifEntries {
			if ie.IsDir() {
				ifNames = append(ifNames, ie.Name())
			}
		}
		sort.Strings(ifNames)
		for _, ifName := range ifNames {
			env := []string{"CNI_COMMAND=DEL", "CNI_CONTAINERID=" + cid, "CNI_PATH=" + i.PluginsDir,
				"CNI_IFNAME=" + ifName, "PATH=" + i.Path}
			if nsMounted {
				env = append(env, "CNI_NETNS="+i.nsPath(cid))
			}
			if _, err := i.run(ctx, conf.Type, env, stdin); err != nil {
				errs = append(errs, fmt.Errorf("failed to detach container %s from network %q: %w", cid, ne.Name(), err))
				continue
			}
			if err := os.RemoveAll(filepath.Join(netDir, ifName)); err != nil {
				return err
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if nsMounted {
		if err := syscall.Unmount(i.nsPath(cid), syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", i.nsPath(cid), err)
		}
	}
	return os.RemoveAll(i.containerDir(cid))
}

// ForgetNamespace unmounts <root>/<cid>/ns, as after a reboot with
// --network_cni_root_dir_persist: the next DEL gets no CNI_NETNS.
func (i *Isolator) ForgetNamespace(cid string) error {
	if !isNamespace(i.nsPath(cid)) {
		return nil
	}
	return syscall.Unmount(i.nsPath(cid), syscall.MNT_DETACH)
}

// SaveOnly writes network.conf and the interface directory for a network
// without running ADD, as when the agent died between the two.
func (i *Isolator) SaveOnly(cid, ifName string, info NetworkInfo, stdin []byte) error {
	ifDir := filepath.Join(i.networkDir(cid, info.Name), ifName)
	if err := os.MkdirAll(ifDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(i.networkDir(cid, info.Name), "network.conf"), stdin, 0o644)
}

// isNamespace reports whether path is an nsfs mount, the check Mesos makes
// before passing CNI_NETNS to DEL.
func isNamespace(path string) bool {
	const nsfsMagic = 0x6e736673 // NSFS_MAGIC, linux/magic.h
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == nsfsMagic
}
