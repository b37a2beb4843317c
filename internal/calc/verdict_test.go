package calc

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
)

func tcp(src, dst string, dport uint16) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 6, SrcPort: 40000, DstPort: dport}
}

func udp(src, dst string, dport uint16) Packet {
	p := tcp(src, dst, dport)
	p.Protocol = 17
	return p
}

func icmp(src, dst string, typ, code uint8) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 1, ICMPType: typ, ICMPCode: code}
}

func verdictText(d Decision) string {
	if d.Allowed {
		return "allowed: " + d.String()
	}
	return "denied: " + d.String()
}

// Verdict applies calico-design.md §6.2 "Endpoint chain" to the golden
// states of TestStates.
func TestVerdict(t *testing.T) {
	states := map[string]*State{}
	for _, tc := range stateCases(t) {
		c := New(tc.node, WithBGP(tc.bgp))
		c.Replace(tc.rs)
		states[tc.name] = c.State()
	}
	established := tcp("10.9.9.9", "10.65.0.9", 80)
	established.Established = true
	for _, tc := range []struct {
		state, ep, dir string
		p              Packet
		want           string
	}{
		// §6.2 step 4: no policy, no profile: drop.
		{"default-deny", "h1-lonely", Ingress, tcp("10.65.0.1", "10.65.0.9", 80), "denied: no profile matched"},
		{"default-deny", "h1-lonely", Egress, tcp("10.65.0.9", "10.65.0.1", 80), "denied: no profile matched"},
		// §6.2 step 1: established flows pass before policy.
		{"default-deny", "h1-lonely", Ingress, established, "allowed: established flow"},
		// Dispatch drops what it does not know.
		{"default-deny", "h1-nobody", Ingress, tcp("10.65.0.1", "10.65.0.9", 80), "denied: unknown endpoint"},
		// §2 effective labels: a remote endpoint inherits net=net1.
		{"profile-inheritance", "h1-fe", Ingress, tcp("10.65.1.1", "10.65.0.1", 80), "allowed: profile net1 rule 0 (Allow)"},
		// Its own label wins over the profile's.
		{"profile-inheritance", "h1-fe", Ingress, tcp("10.65.0.4", "10.65.0.1", 80), "denied: no profile matched"},
		{"profile-inheritance", "h1-own", Egress, tcp("10.65.0.4", "192.0.2.1", 80), "allowed: profile net1 rule 0 (Allow)"},
		// §6.1 order then name: alpha's rule does not match, zeta denies
		// before the unordered policy.
		{"policy-order", "h1-be", Ingress, tcp("10.65.0.1", "10.65.0.2", 80), "denied: policy zeta rule 0 (Deny)"},
		{"policy-order", "h1-be", Egress, tcp("10.65.0.2", "10.65.0.1", 80), "allowed: policy first rule 0 (Allow)"},
		// Log is not terminal; Pass goes to the profiles.
		{"pass-and-empty-policy", "h1-fe", Ingress, tcp("10.65.0.2", "10.65.0.1", 80), "allowed: profile net1 rule 0 (Allow)"},
		{"pass-and-empty-policy", "h1-fe", Ingress, tcp("10.9.9.9", "10.65.0.1", 80), "denied: no profile matched"},
		{"pass-and-empty-policy", "h1-fe", Ingress, udp("10.65.0.2", "10.65.0.1", 53), "denied: policy deny-later rule 0 (Deny)"},
		// A policy with no rules ends the tier.
		{"pass-and-empty-policy", "h1-be", Ingress, tcp("10.65.0.1", "10.65.0.2", 80), "denied: no policy matched (end of tier)"},
		// ... only in its own direction.
		{"pass-and-empty-policy", "h1-be", Egress, tcp("10.65.0.2", "10.65.0.1", 80), "allowed: profile net1 rule 0 (Allow)"},
		// A missing profile drops.
		{"missing-profile", "h1-orphan", Ingress, tcp("10.65.0.5", "10.65.0.5", 80), "allowed: profile net1 rule 0 (Allow)"},
		{"missing-profile", "h1-orphan", Ingress, tcp("10.9.9.9", "10.65.0.5", 80), "denied: profile gone rule 0 (Deny), profile does not exist"},
		// Named ports resolve per endpoint.
		{"named-ports", "h1-fe", Egress, tcp("10.65.0.1", "10.65.1.2", 80), "allowed: policy to-http rule 0 (Allow)"},
		{"named-ports", "h1-fe", Egress, tcp("10.65.0.1", "10.65.1.2", 8080), "denied: no policy matched (end of tier)"},
		{"named-ports", "h1-fe", Egress, tcp("10.65.0.1", "10.65.0.2", 8080), "allowed: policy to-http rule 0 (Allow)"},
		{"named-ports", "h1-fe", Egress, tcp("10.65.0.1", "10.65.0.2", 443), "allowed: policy to-http rule 0 (Allow)"},
		{"named-ports", "h1-fe", Egress, tcp("10.65.0.1", "10.65.1.3", 8000), "allowed: policy to-http rule 1 (Allow)"},
		{"named-ports", "h1-fe", Egress, udp("10.65.0.1", "10.65.1.2", 80), "denied: no policy matched (end of tier)"},
		{"named-ports", "h1-be", Ingress, tcp("10.65.0.1", "10.65.0.2", 8080), "allowed: policy in-http rule 0 (Allow)"},
		{"named-ports", "h1-be", Ingress, tcp("10.65.0.1", "10.65.0.2", 80), "denied: no policy matched (end of tier)"},
		// Network sets are matched through their nets.
		{"netsets", "h1-fe", Egress, tcp("10.65.0.1", "192.0.2.5", 443), "denied: policy fe-out rule 0 (Deny)"},
		{"netsets", "h1-fe", Egress, tcp("10.65.0.1", "198.51.100.7", 443), "denied: policy fe-out rule 0 (Deny)"},
		{"netsets", "h1-fe", Egress, tcp("10.65.0.1", "8.8.8.8", 443), "allowed: policy fe-out rule 1 (Allow)"},
		{"netsets", "h1-fe", Egress, tcp("10.65.0.1", "2001:db8::1", 443), "allowed: policy fe-out rule 1 (Allow)"},
		{"netsets", "h1-fe", Ingress, tcp("10.65.2.1", "10.65.0.1", 80), "allowed: policy fe-out rule 0 (Allow)"},
		// ... including the internet set's 0.0.0.0/0, which covers
		// non-external endpoints too.
		{"netsets", "h1-fe", Ingress, tcp("10.65.1.1", "10.65.0.1", 80), "allowed: policy fe-out rule 0 (Allow)"},
		// notSelector, notNets, port ranges, notPorts, ICMP type/code.
		{"negations", "h1-be", Ingress, tcp("10.9.9.9", "10.65.0.2", 8000), "denied: policy neg rule 0 (Deny)"},
		{"negations", "h1-be", Ingress, tcp("192.168.3.3", "10.65.0.2", 8000), "allowed: policy neg rule 2 (Allow)"},
		{"negations", "h1-be", Ingress, tcp("10.65.1.1", "10.65.0.2", 8100), "allowed: policy neg rule 2 (Allow)"},
		{"negations", "h1-be", Ingress, tcp("10.65.1.1", "10.65.0.2", 9000), "allowed: policy neg rule 2 (Allow)"},
		{"negations", "h1-be", Ingress, tcp("10.65.1.1", "10.65.0.2", 8050), "denied: no policy matched (end of tier)"},
		{"negations", "h1-be", Ingress, tcp("10.65.1.1", "10.65.0.2", 8101), "denied: no policy matched (end of tier)"},
		{"negations", "h1-be", Ingress, icmp("10.65.1.1", "10.65.0.2", 8, 0), "allowed: policy neg rule 1 (Allow)"},
		{"negations", "h1-be", Ingress, icmp("10.65.1.1", "10.65.0.2", 8, 1), "denied: no policy matched (end of tier)"},
		{"negations", "h1-be", Ingress, icmp("10.65.1.1", "10.65.0.2", 0, 0), "denied: no policy matched (end of tier)"},
		// Host endpoints: failsafes first (limited to their net), then
		// the tier.
		{"host-and-config", "eth0", Ingress, tcp("10.1.1.1", "192.168.1.1", 22), "allowed: failsafe port"},
		{"host-and-config", "eth0", Ingress, tcp("192.168.1.50", "192.168.1.1", 22), "denied: no policy matched (end of tier)"},
		{"host-and-config", "eth0", Ingress, tcp("192.168.1.1", "192.168.1.1", 80), "allowed: policy hosts rule 0 (Allow)"},
		{"host-and-config", "eth0", Egress, udp("192.168.1.1", "192.168.1.53", 53), "denied: no profile matched"},
		// Unsupported rule fields never match; the plain Deny does.
		{"fail-closed", "h1-be", Ingress, tcp("10.65.0.1", "10.65.0.2", 80), "denied: policy alb rule 3 (Deny)"},
		{"fail-closed", "h1-be", Ingress, udp("10.65.0.1", "10.65.0.2", 80), "denied: no policy matched (end of tier)"},
	} {
		got := verdictText(states[tc.state].Verdict(tc.ep, tc.dir, tc.p))
		if got != tc.want {
			t.Errorf("%s: %s %s %+v:\n got %s\nwant %s", tc.state, tc.ep, tc.dir, tc.p, got, tc.want)
		}
	}
}

// Trace judges both sides, each on its own node's state.
func TestTrace(t *testing.T) {
	rs := []api.Resource{
		valid(t, wep("h1-fe", "h1", "calyx0000000001", lbl("role", "frontend"), []string{"net1"}, "10.65.0.1/32")),
		valid(t, wep("h2-be", "h2", "calyx0000000002", lbl("role", "backend"), []string{"net1"}, "10.65.1.2/32")),
		valid(t, profile("net1", lbl("net", "net1"), rules(allowFrom("net == 'net1'")), rules(allow()))),
		valid(t, gnp("allow-fe", ord(10), "role == 'backend'", nil, rules(
			api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"), Source: api.EntityRule{Selector: "role == 'frontend'"},
				Destination: api.EntityRule{Ports: ports("80")}},
		), nil)),
		valid(t, gnp("fe-egress", ord(1), "role == 'frontend'", []string{"Egress"}, nil, rules(
			api.Rule{Action: api.ActionDeny, Protocol: proto("UDP")},
			api.Rule{Action: api.ActionAllow},
		))),
	}
	for _, tc := range []struct {
		name string
		p    Packet
		want string
	}{{
		name: "allowed by policy",
		p:    tcp("10.65.0.1", "10.65.1.2", 80),
		want: "allowed\n" +
			"egress  at h1/h1-fe: policy fe-egress rule 1 (Allow)\n" +
			"ingress at h2/h2-be: policy allow-fe rule 0 (Allow)\n",
	}, {
		name: "end of tier at the destination",
		p:    tcp("10.65.0.1", "10.65.1.2", 81),
		want: "denied\n" +
			"egress  at h1/h1-fe: policy fe-egress rule 1 (Allow)\n" +
			"ingress at h2/h2-be: no policy matched (end of tier)\n",
	}, {
		name: "denied at the source",
		p:    udp("10.65.0.1", "10.65.1.2", 80),
		want: "denied\n" +
			"egress  at h1/h1-fe: policy fe-egress rule 0 (Deny)\n" +
			"ingress at h2/h2-be: no policy matched (end of tier)\n",
	}, {
		name: "to the outside",
		p:    tcp("10.65.0.1", "8.8.8.8", 443),
		want: "allowed\n" +
			"egress  at h1/h1-fe: policy fe-egress rule 1 (Allow)\n" +
			"ingress at 8.8.8.8: not a Calyx endpoint\n",
	}, {
		name: "from the outside",
		p:    tcp("8.8.8.8", "10.65.0.1", 80),
		want: "denied\n" +
			"egress  at 8.8.8.8: not a Calyx endpoint\n" +
			"ingress at h1/h1-fe: no profile matched\n",
	}, {
		name: "profile at the destination",
		p:    tcp("10.65.1.2", "10.65.0.1", 80),
		want: "allowed\n" +
			"egress  at h2/h2-be: profile net1 rule 0 (Allow)\n" +
			"ingress at h1/h1-fe: profile net1 rule 0 (Allow)\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Trace(rs, tc.p)
			if d := cmp.Diff(tc.want, got.String()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if got.Allowed != (tc.want[:7] == "allowed") {
				t.Errorf("Allowed = %v, want %v", got.Allowed, !got.Allowed)
			}
		})
	}
}
