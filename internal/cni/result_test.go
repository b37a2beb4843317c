package cni

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
)

func testAttachment() *attachment {
	return &attachment{
		HostIfName: "calyx0123456789", IfName: "eth0", ContainerMAC: "0a:58:0a:41:00:07", Netns: "/run/netns/c1", MTU: 1450,
		IPs:      []netip.Prefix{netip.MustParsePrefix("10.65.0.7/32"), netip.MustParsePrefix("fd65::7/128")},
		Gateway4: netip.MustParseAddr("169.254.1.1"), Gateway6: netip.MustParseAddr("fe80::ecee:eeff:feee:eeee"),
		DNS: types.DNS{Nameservers: []string{"10.0.0.53"}},
	}
}

// compact re-encodes JSON without whitespace, keeping key order.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, b)
	}
	return buf.String()
}

// canonical re-encodes JSON with sorted keys: the 1.x results are printed
// from a map, so key order is not part of the contract.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestResultEveryVersion(t *testing.T) {
	const (
		ip4    = `{"ip":"10.65.0.7/32","gateway":"169.254.1.1","routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}]}`
		ip6    = `{"ip":"fd65::7/128","gateway":"fe80::ecee:eeff:feee:eeee","routes":[{"dst":"::/0","gw":"fe80::ecee:eeff:feee:eeee"}]}`
		dns    = `"dns":{"nameservers":["10.0.0.53"]}`
		ifaces = `"interfaces":[{"name":"calyx0123456789","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"0a:58:0a:41:00:07","sandbox":"/run/netns/c1"}]`
		routes = `"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0","gw":"fe80::ecee:eeff:feee:eeee"}]`
		ips03  = `"ips":[{"version":"4","interface":1,"address":"10.65.0.7/32","gateway":"169.254.1.1"},{"version":"6","interface":1,"address":"fd65::7/128","gateway":"fe80::ecee:eeff:feee:eeee"}]`
		ips10  = `"ips":[{"interface":1,"address":"10.65.0.7/32","gateway":"169.254.1.1"},{"interface":1,"address":"fd65::7/128","gateway":"fe80::ecee:eeff:feee:eeee"}]`
	)
	for _, tc := range []struct{ version, want string }{
		// 0.1.0 and 0.2.0 are what Mesos parses: ip4.ip with the /32 and
		// the gateway, the routes under ip4/ip6, dns.
		{"0.1.0", `{"cniVersion":"0.1.0","ip4":` + ip4 + `,"ip6":` + ip6 + `,` + dns + `}`},
		{"0.2.0", `{"cniVersion":"0.2.0","ip4":` + ip4 + `,"ip6":` + ip6 + `,` + dns + `}`},
		{"0.3.0", `{"cniVersion":"0.3.0",` + ifaces + `,` + ips03 + `,` + routes + `,` + dns + `}`},
		{"0.3.1", `{"cniVersion":"0.3.1",` + ifaces + `,` + ips03 + `,` + routes + `,` + dns + `}`},
		{"0.4.0", `{"cniVersion":"0.4.0",` + ifaces + `,` + ips03 + `,` + routes + `,` + dns + `}`},
		{"1.0.0", `{"cniVersion":"1.0.0",` + ifaces + `,` + ips10 + `,` + routes + `,` + dns + `}`},
		// 1.1.0 adds the interface MTU.
		{"1.1.0", `{"cniVersion":"1.1.0","interfaces":[{"name":"calyx0123456789","mac":"ee:ee:ee:ee:ee:ee"},` +
			`{"name":"eth0","mac":"0a:58:0a:41:00:07","mtu":1450,"sandbox":"/run/netns/c1"}],` + ips10 + `,` + routes + `,` + dns + `}`},
	} {
		t.Run(tc.version, func(t *testing.T) {
			var out bytes.Buffer
			if err := printResult(&out, testAttachment().result(tc.version), tc.version); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(canonical(t, []byte(tc.want)), canonical(t, out.Bytes())); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
		})
	}
}

// TestResultIPv4OnlyMesosShape is the result a default Mesos config
// (cniVersion 0.2.0, IPv4 only, no dns) gets, byte for byte after
// compaction: Mesos's spec.proto NetworkInfo requires ip4.ip.
func TestResultIPv4OnlyMesosShape(t *testing.T) {
	a := testAttachment()
	a.IPs = a.IPs[:1]
	a.DNS = types.DNS{}
	var out bytes.Buffer
	if err := printResult(&out, a.result("0.2.0"), "0.2.0"); err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"0.2.0","ip4":{"ip":"10.65.0.7/32","gateway":"169.254.1.1","routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}]},"dns":{}}`
	if got := compact(t, out.Bytes()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestIPAMResultEveryVersion(t *testing.T) {
	conf := &Config{}
	r, err := ipamResult(ipamResponse("10.65.0.9/16", "10.65.0.1"), conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ version, want string }{
		{"0.1.0", `{"cniVersion":"0.1.0","ip4":{"ip":"10.65.0.9/16","gateway":"10.65.0.1"},"dns":{}}`},
		{"0.2.0", `{"cniVersion":"0.2.0","ip4":{"ip":"10.65.0.9/16","gateway":"10.65.0.1"},"dns":{}}`},
		{"0.3.0", `{"cniVersion":"0.3.0","ips":[{"version":"4","address":"10.65.0.9/16","gateway":"10.65.0.1"}],"dns":{}}`},
		{"0.3.1", `{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.65.0.9/16","gateway":"10.65.0.1"}],"dns":{}}`},
		{"0.4.0", `{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.65.0.9/16","gateway":"10.65.0.1"}],"dns":{}}`},
		{"1.0.0", `{"cniVersion":"1.0.0","ips":[{"address":"10.65.0.9/16","gateway":"10.65.0.1"}]}`},
		{"1.1.0", `{"cniVersion":"1.1.0","ips":[{"address":"10.65.0.9/16","gateway":"10.65.0.1"}]}`},
	} {
		var out bytes.Buffer
		if err := printResult(&out, r, tc.version); err != nil {
			t.Fatal(err)
		}
		if got, want := canonical(t, out.Bytes()), canonical(t, []byte(tc.want)); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.version, got, tc.want)
		}
	}
}
