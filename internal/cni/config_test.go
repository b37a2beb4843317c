package cni

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/localapi"
)

func TestParseConfig(t *testing.T) {
	const mesosArgs = `"args": {"org.apache.mesos": {"network_info": {"name": "net1",
		"labels": {"labels": [{"key": "app", "value": "web"}, {"key": "mesos/role", "value": "a b"}, {"key": "_bad", "value": "x"}]},
		"port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "tcp"}], "groups": ["g"], "unknown": {"x": 1}}}}`
	for _, tc := range []struct {
		name    string
		stdin   string
		cniArgs string
		check   func(t *testing.T, c *Config)
		// parseErr is a fatal error; problem a kept one (ADD fails on it).
		parseErr, problem string
		code              uint
	}{
		{name: "minimal Mesos config", stdin: `{"name": "calyx", "type": "calyx", "ipam": {"type": "calyx-ipam"}}`,
			check: func(t *testing.T, c *Config) {
				want := &Config{CNIVersion: "0.1.0", Name: "calyx", Type: "calyx", LogLevel: slog.LevelWarn, AgentSocket: localapi.DefaultSocket,
					IPAMType: "calyx-ipam", IPAM: localapi.IPAMRequest{AssignIPv4: true}, Orchestrator: "cni"}
				if d := cmp.Diff(want, c, cmp.AllowUnexported(Config{})); d != "" {
					t.Error(d)
				}
			}},
		{name: "every key", stdin: `{"cniVersion": "0.2.0", "name": "calyx", "type": "calyx", "mtu": 1440, "log_level": "DEBUG",
			"agent_socket": "/var/run/calyx/x.sock", "dns": {"nameservers": ["10.0.0.53"], "search": ["mesos"]},
			"ipam": {"type": "calyx-ipam", "ipv4_pools": ["10.65.0.0/16", "pool-b"], "ipv6_pools": ["fd65::/48"],
				"assign_ipv4": "true", "assign_ipv6": "true", "routes": [{"dst": "10.0.0.0/8"}]}}`,
			cniArgs: "IgnoreUnknown=1;IP=10.65.0.9;K8S_POD_NAME=x",
			check: func(t *testing.T, c *Config) {
				if c.CNIVersion != "0.2.0" || c.MTU != 1440 || c.LogLevel != slog.LevelDebug || c.AgentSocket != "/var/run/calyx/x.sock" {
					t.Errorf("top level: %+v", c)
				}
				want := localapi.IPAMRequest{AssignIPv4: true, AssignIPv6: true, IPv4Pools: []string{"10.65.0.0/16", "pool-b"},
					IPv6Pools: []string{"fd65::/48"}, RequestedIPs: []string{"10.65.0.9"}}
				if d := cmp.Diff(want, c.IPAM); d != "" {
					t.Error(d)
				}
				if len(c.DNS.Nameservers) != 1 || c.DNS.Search[0] != "mesos" || len(c.Routes) != 1 || c.Routes[0].Dst.String() != "10.0.0.0/8" {
					t.Errorf("dns %+v routes %v", c.DNS, c.Routes)
				}
			}},
		{name: "assign as JSON booleans", stdin: `{"name": "n", "ipam": {"assign_ipv4": false, "assign_ipv6": true}}`,
			check: func(t *testing.T, c *Config) {
				if c.IPAM.AssignIPv4 || !c.IPAM.AssignIPv6 {
					t.Errorf("%+v", c.IPAM)
				}
			}},
		{name: "assign as Calico strings", stdin: `{"name": "n", "ipam": {"assign_ipv4": "false", "assign_ipv6": "TRUE"}}`,
			check: func(t *testing.T, c *Config) {
				if c.IPAM.AssignIPv4 || !c.IPAM.AssignIPv6 {
					t.Errorf("%+v", c.IPAM)
				}
			}},
		{name: "mtu as a string", stdin: `{"name": "n", "mtu": "9000"}`,
			check: func(t *testing.T, c *Config) {
				if c.MTU != 9000 {
					t.Errorf("mtu %d", c.MTU)
				}
			}},
		{name: "agent_socket in ipam", stdin: `{"name": "n", "ipam": {"type": "calyx-ipam", "agent_socket": "/tmp/a.sock"}}`,
			check: func(t *testing.T, c *Config) {
				if c.AgentSocket != "/tmp/a.sock" {
					t.Errorf("socket %q", c.AgentSocket)
				}
			}},
		{name: "agent_socket in both, the same", stdin: `{"name": "n", "agent_socket": "/tmp/a.sock", "ipam": {"agent_socket": "/tmp//a.sock"}}`},
		{name: "warn spelled warning", stdin: `{"name": "n", "log_level": "warning"}`},
		{name: "Mesos network_info", stdin: `{"name": "net1", ` + mesosArgs + `}`,
			check: func(t *testing.T, c *Config) {
				if c.Orchestrator != "mesos" {
					t.Errorf("orchestrator %q", c.Orchestrator)
				}
				if d := cmp.Diff(map[string]string{"app": "web", "mesos.role": "a-b"}, c.Labels); d != "" {
					t.Error(d)
				}
				if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `"_bad"`) {
					t.Errorf("warnings %q", c.Warnings)
				}
			}},
		{name: "Mesos port mappings", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [
			{"host_port": 31001, "container_port": 80, "protocol": "tcp"},
			{"host_port": 31001, "container_port": 80, "protocol": "UDP"},
			{"host_port": 31002, "container_port": 8080},
			{"host_port": 31003, "container_port": 53, "protocol": null},
			{"host_port": 31004, "container_port": 9000, "protocol": ""},
			{"host_port": 65535, "container_port": 1, "protocol": "Sctp"},
			{"host_port": 31005, "container_port": 5353, "protocol": "udp,tcp"}]}}}}`,
			check: func(t *testing.T, c *Config) {
				want := []localapi.PortMapping{
					{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"},
					{HostPort: 31001, ContainerPort: 80, Protocol: "udp"},
					{HostPort: 31002, ContainerPort: 8080, Protocol: "tcp"},
					{HostPort: 31003, ContainerPort: 53, Protocol: "tcp"},
					{HostPort: 31004, ContainerPort: 9000, Protocol: "tcp"},
					{HostPort: 65535, ContainerPort: 1, Protocol: "sctp"},
					{HostPort: 31005, ContainerPort: 5353, Protocol: "udp"},
					{HostPort: 31005, ContainerPort: 5353, Protocol: "tcp"},
				}
				if d := cmp.Diff(want, c.PortMappings); d != "" {
					t.Errorf("port mappings (-want +got):\n%s", d)
				}
				if c.Orchestrator != "mesos" || c.Labels != nil {
					t.Errorf("%q %v", c.Orchestrator, c.Labels)
				}
			}},
		{name: "Mesos empty port mappings", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": []}}}}`,
			check: func(t *testing.T, c *Config) {
				if c.PortMappings != nil {
					t.Errorf("port mappings %v", c.PortMappings)
				}
			}},
		{name: "Mesos args without labels", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"name": "n"}}, "other": 1}}`,
			check: func(t *testing.T, c *Config) {
				if c.Orchestrator != "mesos" || c.Labels != nil {
					t.Errorf("%q %v", c.Orchestrator, c.Labels)
				}
			}},
		{name: "args of another runtime", stdin: `{"name": "n", "args": {"cni": {"labels": [{"key": "a", "value": "b"}]}}}`,
			check: func(t *testing.T, c *Config) {
				if c.Orchestrator != "cni" || c.Labels != nil {
					t.Errorf("%q %v", c.Orchestrator, c.Labels)
				}
			}},
		{name: "GC attachments, both spellings", stdin: `{"name": "n", "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
			"cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth1"}]}`,
			check: func(t *testing.T, c *Config) {
				want := []localapi.Attachment{{Network: "n", ContainerID: "a", IfName: "eth0"}, {Network: "n", ContainerID: "b", IfName: "eth1"}}
				if d := cmp.Diff(want, c.Valid); d != "" {
					t.Error(d)
				}
			}},
		{name: "prevResult kept", stdin: `{"name": "n", "cniVersion": "1.0.0", "prevResult": {"cniVersion": "1.0.0", "ips": []}}`,
			check: func(t *testing.T, c *Config) {
				if !strings.Contains(string(c.RawPrevResult), `"ips"`) {
					t.Errorf("prevResult %s", c.RawPrevResult)
				}
			}},
		{name: "two requested IPs", stdin: `{"name": "n"}`, cniArgs: "IP=10.65.0.9,fd65::9",
			check: func(t *testing.T, c *Config) {
				if d := cmp.Diff([]string{"10.65.0.9", "fd65::9"}, c.IPAM.RequestedIPs); d != "" {
					t.Error(d)
				}
			}},

		// Fatal errors.
		{name: "not JSON", stdin: `{"name": `, parseErr: "decoding network config", code: types.ErrDecodingFailure},
		{name: "ipam not an object", stdin: `{"name": "n", "ipam": "calyx-ipam"}`, parseErr: `config key "ipam": expected an object, got "calyx-ipam"`, code: 7},
		{name: "relative agent_socket", stdin: `{"name": "n", "agent_socket": "calyx.sock"}`, parseErr: `config key "agent_socket": expected an absolute path, got "calyx.sock"`, code: 7},
		{name: "agent_socket not a string", stdin: `{"name": "n", "agent_socket": 5}`, parseErr: `config key "agent_socket": expected the path of calyx-node's socket, got 5`, code: 7},
		{name: "agent_socket differs", stdin: `{"name": "n", "agent_socket": "/a.sock", "ipam": {"agent_socket": "/b.sock"}}`,
			parseErr: `config key "ipam.agent_socket": differs from agent_socket "/a.sock"; set one of them, got "/b.sock"`, code: 7},

		// Kept problems.
		{name: "assign_ipv4 bad string", stdin: `{"name": "n", "ipam": {"assign_ipv4": "yes"}}`,
			problem: `config key "ipam.assign_ipv4": expected "true", "false" or a JSON boolean, got "yes"`, code: 7},
		{name: "assign_ipv6 number", stdin: `{"name": "n", "ipam": {"assign_ipv6": 1}}`,
			problem: `config key "ipam.assign_ipv6": expected "true", "false" or a JSON boolean, got 1`, code: 7},
		{name: "nothing to assign", stdin: `{"name": "n", "ipam": {"assign_ipv4": "false"}}`,
			problem: `"ipam.assign_ipv4" and "ipam.assign_ipv6" are both false`, code: 7},
		{name: "mtu too small", stdin: `{"name": "n", "mtu": 20}`, problem: `config key "mtu": expected 68 to 65535 (or 0 for calyx-node's default), got 20`, code: 7},
		{name: "mtu not a number", stdin: `{"name": "n", "mtu": "big"}`, problem: `config key "mtu": expected a whole number, got "big"`, code: 7},
		{name: "log_level unknown", stdin: `{"name": "n", "log_level": "chatty"}`, problem: `config key "log_level": expected "debug", "info", "warning" or "error", got "chatty"`, code: 7},
		{name: "pools not a list", stdin: `{"name": "n", "ipam": {"ipv4_pools": "10.65.0.0/16"}}`,
			problem: `config key "ipam.ipv4_pools": expected a list of pool CIDRs or names, got "10.65.0.0/16"`, code: 7},
		{name: "empty pool", stdin: `{"name": "n", "ipam": {"ipv6_pools": [""]}}`, problem: `config key "ipam.ipv6_pools": expected non-empty pool CIDRs or names`, code: 7},
		{name: "ipam.type not a string", stdin: `{"name": "n", "ipam": {"type": 7}}`, problem: `config key "ipam.type": expected a string, got 7`, code: 7},
		{name: "bad routes", stdin: `{"name": "n", "ipam": {"routes": [{"dst": "nope"}]}}`, problem: `config key "ipam.routes"`, code: 7},
		{name: "bad dns", stdin: `{"name": "n", "dns": ["10.0.0.53"]}`, problem: `config key "dns"`, code: 7},
		{name: "malformed Mesos labels", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"labels": [{"key": "a"}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.labels"`, code: 7},
		{name: "port mappings not a list", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": {"host_port": 1, "container_port": 2}}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings": expected a list of {"host_port": 1-65535, "container_port": 1-65535, "protocol": "tcp"|"udp"|"sctp"}, got {"host_port": 1, "container_port": 2}`, code: 7},
		{name: "port mapping not an object", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 1, "container_port": 2}, 31001]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[1]": expected {"host_port": 1-65535`, code: 7},
		{name: "port mapping host_port missing", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"container_port": 80}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].host_port": missing; expected a port number 1-65535`, code: 7},
		{name: "port mapping host_port zero", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 0, "container_port": 80}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].host_port": expected a port number 1-65535, got 0`, code: 7},
		{name: "port mapping host_port too big", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 65536, "container_port": 80}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].host_port": expected a port number 1-65535, got 65536`, code: 7},
		{name: "port mapping host_port a string", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": "31001", "container_port": 80}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].host_port": expected a port number 1-65535, got "31001"`, code: 7},
		{name: "port mapping container_port missing", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].container_port": missing; expected a port number 1-65535`, code: 7},
		{name: "port mapping container_port negative", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": -80}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].container_port": expected a port number 1-65535, got -80`, code: 7},
		{name: "port mapping container_port fractional", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": 80.5}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].container_port": expected a port number 1-65535, got 80.5`, code: 7},
		{name: "port mapping protocol unknown", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "icmp"}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].protocol": expected "tcp", "udp" or "sctp", got "icmp"`, code: 7},
		{name: "port mapping protocol not a string", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": 6}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].protocol": expected "tcp", "udp" or "sctp", got 6`, code: 7},
		{name: "port mapping protocol list with unknown", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "tcp,quic"}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[0].protocol": expected "tcp", "udp" or "sctp", got "tcp,quic"`, code: 7},
		{name: "port mapping host port twice", stdin: `{"name": "n", "args": {"org.apache.mesos": {"network_info": {"port_mappings": [{"host_port": 31001, "container_port": 80}, {"host_port": 31001, "container_port": 81, "protocol": "TCP"}]}}}}`,
			problem: `config key "args.org.apache.mesos.network_info.port_mappings[1].host_port": expected each host port once per protocol: 31001/tcp is already mapped by args.org.apache.mesos.network_info.port_mappings[0], got 31001`, code: 7},
		{name: "bad GC attachments", stdin: `{"name": "n", "cni.dev/valid-attachments": {"containerID": "a"}}`, problem: `config key "cni.dev/valid-attachments"`, code: 7},
		{name: "CNI_ARGS unknown key", stdin: `{"name": "n"}`, cniArgs: "K8S_POD_NAME=x", problem: "CNI_ARGS: unknown K8S_POD_NAME=x (add IgnoreUnknown=1", code: 4},
		{name: "CNI_ARGS bad IP", stdin: `{"name": "n"}`, cniArgs: "IP=10.65.0.300", problem: `CNI_ARGS: IP="10.65.0.300": "10.65.0.300" is not an IP address`, code: 4},
		{name: "CNI_ARGS two IPv4 addresses", stdin: `{"name": "n"}`, cniArgs: "IP=10.65.0.9,10.65.0.10",
			problem: `CNI_ARGS: IP="10.65.0.9,10.65.0.10": asks for 2 IPv4 and 0 IPv6 addresses; an attachment has at most one of each`, code: 4},
		{name: "CNI_ARGS not a pair", stdin: `{"name": "n"}`, cniArgs: "IP", problem: `CNI_ARGS: "IP" is not KEY=VALUE`, code: 4},
		{name: "CNI_ARGS bad IgnoreUnknown", stdin: `{"name": "n"}`, cniArgs: "IgnoreUnknown=maybe", problem: `IgnoreUnknown="maybe"`, code: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.stdin), tc.cniArgs)
			if tc.parseErr != "" {
				checkCNIError(t, err, tc.code, tc.parseErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem != "" {
				checkCNIError(t, c.Err(), tc.code, tc.problem)
				return
			}
			if c.Err() != nil {
				t.Fatalf("unexpected problem: %v", c.Err())
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// checkCNIError checks that err is a *types.Error with the code and a
// message containing msg.
func checkCNIError(t *testing.T, err error, code uint, msg string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a CNI error with code %d containing %q", err, err, code, msg)
	}
	if e.Code != code || !strings.Contains(e.Msg, msg) {
		t.Fatalf("error code %d %q, want code %d containing %q", e.Code, e.Msg, code, msg)
	}
}
