package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calyx-net/calyx/internal/localapi"
)

// IPAMType is the only ipam.type the calyx plugin accepts: calyx-node owns
// IPAM, so the ADD request carries the ipam settings instead of running a
// delegate.
const IPAMType = "calyx-ipam"

// Config is one parsed CNI call: the network config from stdin and
// CNI_ARGS from the environment.
type Config struct {
	// CNIVersion is the version the result is printed in ("0.1.0" when
	// the config says nothing, as libcni and skel read it).
	CNIVersion string
	Name       string
	Type       string
	// MTU of the veth; 0 means calyx-node's default.
	MTU      int
	LogLevel slog.Level
	// AgentSocket is calyx-node's local API socket.
	AgentSocket string
	// IPAMType is ipam.type ("" when the config has no ipam section).
	IPAMType string
	IPAM     localapi.IPAMRequest
	// Routes are ipam.routes, copied into calyx-ipam's result.
	Routes []*types.Route
	DNS    types.DNS
	// Orchestrator is "mesos" when args."org.apache.mesos" is present,
	// else "cni".
	Orchestrator string
	// Labels are the Mesos NetworkInfo labels, sanitised.
	Labels map[string]string
	// PortMappings are the Mesos NetworkInfo port_mappings, validated,
	// with the protocol in lower case ("tcp" when Mesos gave none).
	PortMappings []localapi.PortMapping
	// Valid lists the attachments a GC must keep.
	Valid []localapi.Attachment
	// RawPrevResult is the prevResult object, if any.
	RawPrevResult json.RawMessage
	// Warnings are things the plugin should log but not fail on.
	Warnings []string
	// problems are bad values in keys that not every command needs: ADD
	// and CHECK fail on them, DEL, GC and STATUS only log them.
	problems []error
}

// rawConf is the config as it arrives. Every key this package reads is kept
// raw, so that a bad value is reported with its key rather than as a bare
// JSON decoding error.
type rawConf struct {
	CNIVersion  string          `json:"cniVersion"`
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	MTU         json.RawMessage `json:"mtu"`
	LogLevel    json.RawMessage `json:"log_level"`
	AgentSocket json.RawMessage `json:"agent_socket"`
	IPAM        json.RawMessage `json:"ipam"`
	DNS         json.RawMessage `json:"dns"`
	Args        json.RawMessage `json:"args"`
	PrevResult  json.RawMessage `json:"prevResult"`
	Valid       json.RawMessage `json:"cni.dev/valid-attachments"`
	OldValid    json.RawMessage `json:"cni.dev/attachments"`
}

type rawIPAM struct {
	Type        json.RawMessage `json:"type"`
	AgentSocket json.RawMessage `json:"agent_socket"`
	LogLevel    json.RawMessage `json:"log_level"`
	IPv4Pools   json.RawMessage `json:"ipv4_pools"`
	IPv6Pools   json.RawMessage `json:"ipv6_pools"`
	AssignIPv4  json.RawMessage `json:"assign_ipv4"`
	AssignIPv6  json.RawMessage `json:"assign_ipv6"`
	Routes      json.RawMessage `json:"routes"`
}

// configError is the CNI error for a bad config key: code 7, naming the key
// and the value.
func configError(key string, raw json.RawMessage, format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("config key %q: %s, got %s", key, fmt.Sprintf(format, args...), shorten(raw)), "")
}

func shorten(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// ParseConfig parses the network config and CNI_ARGS. Errors are CNI
// errors: 6 for a config that is not a JSON object, 7 for a bad key, 4 for
// bad CNI_ARGS. Bad values in keys only ADD and CHECK need are kept in the
// Config (see Err) so that DEL can still run.
func ParseConfig(stdin []byte, cniArgs string) (*Config, error) {
	var raw rawConf
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("decoding network config: %v", err), "")
	}
	c := &Config{
		CNIVersion:   raw.CNIVersion,
		Name:         raw.Name,
		Type:         raw.Type,
		LogLevel:     slog.LevelWarn,
		AgentSocket:  localapi.DefaultSocket,
		Orchestrator: "cni",
		IPAM:         localapi.IPAMRequest{AssignIPv4: true},
	}
	if c.CNIVersion == "" {
		c.CNIVersion = "0.1.0"
	}
	var ri rawIPAM
	if isSet(raw.IPAM) {
		if err := json.Unmarshal(raw.IPAM, &ri); err != nil {
			return nil, configError("ipam", raw.IPAM, "expected an object")
		}
	}
	if err := c.parseSocket(raw.AgentSocket, ri.AgentSocket); err != nil {
		return nil, err
	}
	c.parseLogLevel(raw.LogLevel, ri.LogLevel)
	c.parseIPAM(ri)
	if isSet(raw.MTU) {
		c.MTU = c.intKey("mtu", raw.MTU)
		if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
			c.problem(configError("mtu", raw.MTU, "expected 68 to 65535 (or 0 for calyx-node's default)"))
			c.MTU = 0
		}
	}
	if isSet(raw.DNS) {
		if err := json.Unmarshal(raw.DNS, &c.DNS); err != nil {
			c.problem(configError("dns", raw.DNS, "expected {nameservers, domain, search, options}"))
		}
	}
	c.parseArgs(raw.Args)
	c.parseValid(raw.Valid, "cni.dev/valid-attachments")
	c.parseValid(raw.OldValid, "cni.dev/attachments")
	if isSet(raw.PrevResult) {
		c.RawPrevResult = raw.PrevResult
	}
	c.parseCNIArgs(cniArgs)
	return c, nil
}

// Err returns the first bad value ParseConfig kept, or nil.
func (c *Config) Err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return c.problems[0]
}

// Problems returns every bad value ParseConfig kept.
func (c *Config) Problems() []error { return c.problems }

func (c *Config) problem(err error) { c.problems = append(c.problems, err) }

func isSet(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) > 0 && !bytes.Equal(s, []byte("null"))
}

func (c *Config) parseSocket(top, inIPAM json.RawMessage) error {
	var sock string
	for _, k := range []struct {
		key string
		raw json.RawMessage
	}{{"agent_socket", top}, {"ipam.agent_socket", inIPAM}} {
		if !isSet(k.raw) {
			continue
		}
		var s string
		if err := json.Unmarshal(k.raw, &s); err != nil || s == "" {
			return configError(k.key, k.raw, "expected the path of calyx-node's socket")
		}
		if !filepath.IsAbs(s) {
			return configError(k.key, k.raw, "expected an absolute path")
		}
		if sock != "" && filepath.Clean(sock) != filepath.Clean(s) {
			return configError(k.key, k.raw, "differs from agent_socket %q; set one of them", sock)
		}
		sock = s
	}
	if sock != "" {
		c.AgentSocket = sock
	}
	return nil
}

func (c *Config) parseLogLevel(top, inIPAM json.RawMessage) {
	for _, k := range []struct {
		key string
		raw json.RawMessage
	}{{"log_level", top}, {"ipam.log_level", inIPAM}} {
		if !isSet(k.raw) {
			continue
		}
		var s string
		_ = json.Unmarshal(k.raw, &s)
		switch strings.ToLower(s) {
		case "debug":
			c.LogLevel = slog.LevelDebug
		case "info":
			c.LogLevel = slog.LevelInfo
		case "warning", "warn":
			c.LogLevel = slog.LevelWarn
		case "error", "fatal", "panic":
			c.LogLevel = slog.LevelError
		default:
			c.problem(configError(k.key, k.raw, `expected "debug", "info", "warning" or "error"`))
		}
	}
}

func (c *Config) parseIPAM(ri rawIPAM) {
	if isSet(ri.Type) {
		if err := json.Unmarshal(ri.Type, &c.IPAMType); err != nil {
			c.problem(configError("ipam.type", ri.Type, "expected a string"))
		}
	}
	if isSet(ri.AssignIPv4) {
		c.IPAM.AssignIPv4 = c.boolKey("ipam.assign_ipv4", ri.AssignIPv4)
	}
	if isSet(ri.AssignIPv6) {
		c.IPAM.AssignIPv6 = c.boolKey("ipam.assign_ipv6", ri.AssignIPv6)
	}
	if !c.IPAM.AssignIPv4 && !c.IPAM.AssignIPv6 {
		c.problem(types.NewError(types.ErrInvalidNetworkConfig,
			`config keys "ipam.assign_ipv4" and "ipam.assign_ipv6" are both false: nothing to assign`, ""))
	}
	c.IPAM.IPv4Pools = c.poolsKey("ipam.ipv4_pools", ri.IPv4Pools)
	c.IPAM.IPv6Pools = c.poolsKey("ipam.ipv6_pools", ri.IPv6Pools)
	if isSet(ri.Routes) {
		if err := json.Unmarshal(ri.Routes, &c.Routes); err != nil {
			c.problem(configError("ipam.routes", ri.Routes, `expected [{"dst": CIDR, "gw": IP}]`))
			c.Routes = nil
		}
	}
}

// boolKey reads a boolean written either as Calico wrote it (the strings
// "true" and "false") or as a JSON boolean.
func (c *Config) boolKey(key string, raw json.RawMessage) bool {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	c.problem(configError(key, raw, `expected "true", "false" or a JSON boolean`))
	return false
}

// intKey reads a JSON number or a string holding one.
func (c *Config) intKey(key string, raw json.RawMessage) int {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n
		}
	}
	c.problem(configError(key, raw, "expected a whole number"))
	return 0
}

func (c *Config) poolsKey(key string, raw json.RawMessage) []string {
	if !isSet(raw) {
		return nil
	}
	var pools []string
	if err := json.Unmarshal(raw, &pools); err != nil {
		c.problem(configError(key, raw, "expected a list of pool CIDRs or names"))
		return nil
	}
	for _, p := range pools {
		if strings.TrimSpace(p) == "" {
			c.problem(configError(key, raw, "expected non-empty pool CIDRs or names"))
			return nil
		}
	}
	return pools
}

// mesosNetworkInfo is the part of Mesos's NetworkInfo protobuf (in its
// snake_case JSON form) that Calyx reads as a whole. port_mappings is read
// entry by entry (parsePortMappings); unknown keys (groups, ip_addresses,
// ...) are ignored.
type mesosNetworkInfo struct {
	Name   string `json:"name"`
	Labels struct {
		Labels []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"labels"`
	} `json:"labels"`
}

// portMappingsKey is the config key of the Mesos port mappings, in errors.
const portMappingsKey = "args.org.apache.mesos.network_info.port_mappings"

// parseArgs reads args."org.apache.mesos".network_info, tolerantly: only
// malformed labels and port mappings are a problem, because dropping
// labels silently would drop the endpoint out of the policy that selects
// on them, and dropping a port mapping would leave the task unreachable
// on the port its framework announced.
func (c *Config) parseArgs(raw json.RawMessage) {
	if !isSet(raw) {
		return
	}
	var args map[string]json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil {
		c.Warnings = append(c.Warnings, fmt.Sprintf("ignoring config key \"args\": not an object: %s", shorten(raw)))
		return
	}
	mraw, ok := args["org.apache.mesos"]
	if !ok {
		return
	}
	c.Orchestrator = "mesos"
	var mesos map[string]json.RawMessage
	if err := json.Unmarshal(mraw, &mesos); err != nil || !isSet(mesos["network_info"]) {
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(mesos["network_info"], &fields); err != nil {
		c.Warnings = append(c.Warnings, "ignoring args.org.apache.mesos.network_info: not an object")
		return
	}
	if isSet(fields["port_mappings"]) {
		c.parsePortMappings(fields["port_mappings"])
	}
	if !isSet(fields["labels"]) {
		return
	}
	var ni mesosNetworkInfo
	if err := json.Unmarshal(mesos["network_info"], &ni); err != nil {
		c.problem(configError("args.org.apache.mesos.network_info.labels", fields["labels"],
			`expected {"labels": [{"key": ..., "value": ...}]}`))
		return
	}
	labels := make(map[string]string, len(ni.Labels.Labels))
	for _, l := range ni.Labels.Labels {
		k, v, warn := SanitiseLabel(l.Key, l.Value)
		if warn != "" {
			c.Warnings = append(c.Warnings, warn)
			continue
		}
		if old, dup := labels[k]; dup && old != v {
			c.Warnings = append(c.Warnings, fmt.Sprintf("Mesos labels %q: several labels sanitise to this key; keeping value %q", k, v))
		}
		labels[k] = v
	}
	if len(labels) > 0 {
		c.Labels = labels
	}
}

// parsePortMappings reads network_info.port_mappings: a list of
// {"host_port": N, "container_port": N, "protocol": P}. Both ports are
// required (as in Mesos's PortMapping message) and must be 1-65535. The
// protocol is tcp, udp or sctp in any case; when it is absent, null or
// empty it is tcp, as Mesos's own mesos-cni-port-mapper reads it.
// Marathon may write a list such as "udp,tcp", which maps the port for
// each protocol. A host port may be mapped once per protocol. Entries in
// error are left out, and each is a problem naming its key.
func (c *Config) parsePortMappings(raw json.RawMessage) {
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		c.problem(configError(portMappingsKey, raw,
			`expected a list of {"host_port": 1-65535, "container_port": 1-65535, "protocol": "tcp"|"udp"|"sctp"}`))
		return
	}
	type hostPortKey struct {
		port  uint16
		proto string
	}
	first := map[hostPortKey]int{}
	for i, e := range entries {
		key := fmt.Sprintf("%s[%d]", portMappingsKey, i)
		var f map[string]json.RawMessage
		if err := json.Unmarshal(e, &f); err != nil || f == nil {
			c.problem(configError(key, e, `expected {"host_port": 1-65535, "container_port": 1-65535, "protocol": "tcp"|"udp"|"sctp"}`))
			continue
		}
		host, okHost := c.portKey(key+".host_port", f["host_port"])
		cont, okCont := c.portKey(key+".container_port", f["container_port"])
		protos, okProto := c.protocolsKey(key+".protocol", f["protocol"])
		if !okHost || !okCont || !okProto {
			continue
		}
		for _, p := range protos {
			k := hostPortKey{host, p}
			if j, dup := first[k]; dup {
				c.problem(configError(key+".host_port", f["host_port"],
					"expected each host port once per protocol: %d/%s is already mapped by %s[%d]", host, p, portMappingsKey, j))
				continue
			}
			first[k] = i
			c.PortMappings = append(c.PortMappings, localapi.PortMapping{HostPort: host, ContainerPort: cont, Protocol: p})
		}
	}
}

// portKey reads a required port number, 1-65535.
func (c *Config) portKey(key string, raw json.RawMessage) (uint16, bool) {
	if !isSet(raw) {
		c.problem(types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("config key %q: missing; expected a port number 1-65535", key), ""))
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > 65535 {
		c.problem(configError(key, raw, "expected a port number 1-65535"))
		return 0, false
	}
	return uint16(n), true
}

// mappingProtocols are the protocols a port mapping may use.
var mappingProtocols = []string{"tcp", "udp", "sctp"}

// protocolsKey reads a port mapping's protocol: tcp when absent, else one
// protocol or a comma-separated list of them, in any case.
func (c *Config) protocolsKey(key string, raw json.RawMessage) ([]string, bool) {
	if !isSet(raw) {
		return []string{"tcp"}, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		c.problem(configError(key, raw, `expected "tcp", "udp" or "sctp"`))
		return nil, false
	}
	if strings.TrimSpace(s) == "" {
		return []string{"tcp"}, true
	}
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if !slices.Contains(mappingProtocols, p) {
			c.problem(configError(key, raw, `expected "tcp", "udp" or "sctp"`))
			return nil, false
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, true
}

func (c *Config) parseValid(raw json.RawMessage, key string) {
	if !isSet(raw) {
		return
	}
	var atts []types.GCAttachment
	if err := json.Unmarshal(raw, &atts); err != nil {
		c.problem(configError(key, raw, `expected [{"containerID": ..., "ifname": ...}]`))
		return
	}
	for _, a := range atts {
		att := localapi.Attachment{Network: c.Name, ContainerID: a.ContainerID, IfName: a.IfName}
		dup := false
		for _, v := range c.Valid {
			dup = dup || v == att
		}
		if !dup {
			c.Valid = append(c.Valid, att)
		}
	}
}

// parseCNIArgs reads CNI_ARGS ("K=V;K2=V2"): IP= asks for addresses (one
// per family, comma-separated); other keys are refused unless
// IgnoreUnknown=1 (or true) is present, as CNI's own args loader does.
func (c *Config) parseCNIArgs(s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	argsError := func(format string, a ...any) {
		c.problem(types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: "+fmt.Sprintf(format, a...), ""))
	}
	var unknown []string
	ignoreUnknown := false
	for pair := range strings.SplitSeq(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			argsError("%q is not KEY=VALUE", pair)
			return
		}
		switch k {
		case "IgnoreUnknown":
			switch strings.ToLower(v) {
			case "1", "true":
				ignoreUnknown = true
			case "0", "false":
			default:
				argsError("IgnoreUnknown=%q: expected 1, 0, true or false", v)
				return
			}
		case "IP":
			n4, n6 := 0, 0
			for ip := range strings.SplitSeq(v, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(ip))
				if err != nil {
					argsError("IP=%q: %q is not an IP address", v, ip)
					return
				}
				if a.Unmap().Is4() {
					n4++
				} else {
					n6++
				}
				c.IPAM.RequestedIPs = append(c.IPAM.RequestedIPs, a.String())
			}
			if n4 > 1 || n6 > 1 {
				argsError("IP=%q: asks for %d IPv4 and %d IPv6 addresses; an attachment has at most one of each", v, n4, n6)
				c.IPAM.RequestedIPs = nil
				return
			}
		default:
			unknown = append(unknown, pair)
		}
	}
	if len(unknown) > 0 && !ignoreUnknown {
		argsError("unknown %s (add IgnoreUnknown=1 to ignore them)", strings.Join(unknown, ", "))
	}
}
