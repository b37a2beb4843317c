package cni

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calyx-net/calyx/internal/api"
)

// labelsProblem returns the API's objection to labels on a resource, or "".
func labelsProblem(labels map[string]string) string {
	p := &api.Profile{Metadata: api.ObjectMeta{Name: "fuzz", Labels: labels}}
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		return err.Error()
	}
	return ""
}

// FuzzSanitiseLabel checks that a label SanitiseLabel keeps is one the
// datastore accepts, that sanitising it again changes nothing, and that a
// dropped label comes with a reason.
func FuzzSanitiseLabel(f *testing.F) {
	for _, kv := range [][2]string{
		{"app", "web"}, {"mesos/role", "a b"}, {"_bad", "x"}, {"a//b", "c--d"}, {"..x..", "-y-"},
		{strings.Repeat("k", 64), "v"}, {"k", strings.Repeat("v", 64)}, {"ünï/cødé", "✓"}, {"", ""}, {"a.-b", "c-.d"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		k, v, warn := SanitiseLabel(key, value)
		if warn != "" {
			if !strings.Contains(warn, "dropping Mesos label") {
				t.Fatalf("SanitiseLabel(%q, %q) warning %q does not say the label is dropped", key, value, warn)
			}
			return
		}
		if p := labelsProblem(map[string]string{k: v}); p != "" {
			t.Fatalf("SanitiseLabel(%q, %q) kept %q=%q, which the datastore refuses: %s", key, value, k, v, p)
		}
		k2, v2, warn2 := SanitiseLabel(k, v)
		if k2 != k || v2 != v || warn2 != "" {
			t.Fatalf("sanitising %q=%q again gave %q=%q (%q)", k, v, k2, v2, warn2)
		}
	})
}

// FuzzParseConfig checks that ParseConfig never panics, that its errors
// are CNI errors with a code and a message, that it is deterministic, and
// that the Mesos labels it keeps are valid labels.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []struct{ stdin, args string }{
		{`{"cniVersion": "1.0.0", "name": "calyx", "type": "calyx", "ipam": {"type": "calyx-ipam"}}`, ""},
		{`{"name": "net1", "type": "calyx", "mtu": 1400, "log_level": "debug", "agent_socket": "/run/calyx/calyx.sock",
			"ipam": {"type": "calyx-ipam", "ipv4_pools": ["10.0.0.0/16"], "ipv6_pools": ["pool6"], "assign_ipv6": "true",
			"routes": [{"dst": "0.0.0.0/0"}]}, "dns": {"nameservers": ["10.0.0.2"]}}`, "IP=10.0.0.5;IgnoreUnknown=1;K8S_POD_NAME=x"},
		{`{"name": "net1", "args": {"org.apache.mesos": {"network_info": {"name": "net1",
			"labels": {"labels": [{"key": "app", "value": "web"}, {"key": "mesos/role", "value": "a b"}, {"key": "_bad", "value": "x"}]},
			"port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "tcp"}], "groups": ["g"]}}}}`, ""},
		{`{"name": "n", "args": {"org.apache.mesos": {"network_info": {"labels": [{"key": "a"}]}}}}`, ""},
		{`{"name": "n", "cni.dev/valid-attachments": [{"containerID": "c", "ifname": "eth0"}], "prevResult": {"ips": []}}`, ""},
		{`{"name": "n", "mtu": "x", "ipam": []}`, "IP=nope"},
		{`[]`, ""},
		{``, "="},
	} {
		f.Add([]byte(seed.stdin), seed.args)
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := ParseConfig(stdin, cniArgs)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code == 0 || te.Msg == "" {
				t.Fatalf("ParseConfig error %#v is not a CNI error with a code and message", err)
			}
			return
		}
		again, err := ParseConfig(stdin, cniArgs)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("ParseConfig is not deterministic: %+v, then %+v, %v", c, again, err)
		}
		if c.CNIVersion == "" || (c.Orchestrator != "cni" && c.Orchestrator != "mesos") {
			t.Fatalf("ParseConfig gave version %q, orchestrator %q", c.CNIVersion, c.Orchestrator)
		}
		for _, p := range c.Problems() {
			if p == nil || p.Error() == "" {
				t.Fatalf("ParseConfig kept an empty problem in %v", c.Problems())
			}
		}
		for k, v := range c.Labels {
			if p := labelsProblem(map[string]string{k: v}); p != "" {
				t.Fatalf("ParseConfig kept label %q=%q, which the datastore refuses: %s", k, v, p)
			}
		}
	})
}
