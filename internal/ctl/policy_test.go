package ctl

import (
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestPolicyTrace runs calyxctl policy trace against a datastore: the first
// line is the verdict, the deciding rule is named on each side, endpoint
// names and IPv6 resolve, and bad input exits with an error naming the
// flag.
func TestPolicyTrace(t *testing.T) {
	ep := testnet.ClientFlags(testnet.StartEtcd(t))
	const docs = `apiVersion: calyx.dev/v1
kind: Profile
metadata: {name: net1}
spec:
  ingress: [{action: Allow, source: {selector: 'calyx.dev/network == "net1"'}}]
  egress: [{action: Allow}]
---
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-in}
spec:
  order: 10
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == "api"}
    destination: {ports: [5432]}
---
apiVersion: calyx.dev/v1
kind: WorkloadEndpoint
metadata: {name: h1-api, labels: {role: api, calyx.dev/network: net1}}
spec: {orchestrator: cni, containerID: c1, endpoint: eth0, node: h1, interfaceName: calyx0000000001, ipNetworks: [10.65.0.1/32, "fd65::1/128"], profiles: [net1]}
---
apiVersion: calyx.dev/v1
kind: WorkloadEndpoint
metadata: {name: h2-db, labels: {role: db, calyx.dev/network: net1}}
spec: {orchestrator: cni, containerID: c2, endpoint: eth0, node: h2, interfaceName: calyx0000000002, ipNetworks: [10.65.0.2/32, "fd65::2/128"], profiles: [net1]}
`
	if _, _, err := run(t, ep, docs, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string // the first is the first line
	}{
		{[]string{"--from", "h1-api", "--to", "h2-db", "--port", "5432/tcp"},
			[]string{"allowed", "egress  at h1/h1-api: profile net1 rule 0 (Allow)", "ingress at h2/h2-db: policy db-in rule 0 (Allow)"}},
		{[]string{"--from", "h1-api", "--to", "h2-db", "--port", "80/tcp"}, []string{"denied", "end of tier"}},
		{[]string{"--from", "h2-db", "--to", "10.65.0.1"}, []string{"allowed", "h1/h1-api: profile net1 rule 0 (Allow)"}},
		{[]string{"--from", "192.0.2.9", "--to", "h1-api", "--icmp", "8/0"}, []string{"denied", "192.0.2.9", "no profile matched"}},
		{[]string{"--from", "fd65::1", "--to", "h2-db", "--port", "5432/tcp"}, []string{"allowed", "policy db-in rule 0"}},
	} {
		out, _, err := run(t, ep, "", append([]string{"policy", "trace"}, tc.args...)...)
		if err != nil {
			t.Errorf("trace %v: %v", tc.args, err)
			continue
		}
		if first, _, _ := strings.Cut(out, "\n"); first != tc.want[0] {
			t.Errorf("trace %v: first line %q, want %q\n%s", tc.args, first, tc.want[0], out)
		}
		wantContains(t, "trace output", out, tc.want[1:]...)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--from", "h1-api"}, []string{"--to"}},
		{[]string{"--from", "nope", "--to", "h2-db"}, []string{`--from "nope"`, "workload endpoint"}},
		{[]string{"--from", "h1-api", "--to", "h2-db", "--port", "http"}, []string{`--port "http"`, "1-65535"}},
		{[]string{"--from", "h1-api", "--to", "h2-db", "--port", "53/dccp"}, []string{"dccp", "tcp, udp or sctp"}},
		{[]string{"--from", "h1-api", "--to", "h2-db", "--icmp", "300"}, []string{`--icmp "300"`}},
		{[]string{"--from", "h1-api", "--to", "h2-db", "--icmp", "8", "--port", "80"}, []string{"one or the other"}},
		{[]string{"--from", "10.65.0.1", "--to", "fd65::2"}, []string{"no address family in common"}},
	} {
		_, _, err := run(t, ep, "", append([]string{"policy", "trace"}, tc.args...)...)
		if err == nil {
			t.Errorf("trace %v succeeded", tc.args)
			continue
		}
		wantContains(t, "error", err.Error(), tc.want...)
	}
}
