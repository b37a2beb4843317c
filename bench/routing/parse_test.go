package main

import (
	"testing"
)

func TestParseIperfTCP(t *testing.T) {
	got, err := parseIperfTCP([]byte(`{"end":{"sum_sent":{"seconds":3,"bits_per_second":2e10},"sum_received":{"seconds":3,"bits_per_second":1.5e10}}}`))
	if err != nil || got != 1.5e10 {
		t.Errorf("parseIperfTCP = %v, %v; want 1.5e10 (the receiver's figure)", got, err)
	}
	for _, bad := range []string{`{"error":"unable to connect to server"}`, `{"end":{}}`, `not json`} {
		if _, err := parseIperfTCP([]byte(bad)); err == nil {
			t.Errorf("parseIperfTCP(%s): no error", bad)
		}
	}
}

func TestParseIperfUDP(t *testing.T) {
	got, err := parseIperfUDP([]byte(`{"end":{"sum":{"seconds":2,"packets":1000,"lost_packets":200}}}`))
	if err != nil || got != 400 {
		t.Errorf("parseIperfUDP = %v, %v; want 400", got, err)
	}
	for _, bad := range []string{`{"error":"unable to connect"}`, `{"end":{}}`, `not json`} {
		if _, err := parseIperfUDP([]byte(bad)); err == nil {
			t.Errorf("parseIperfUDP(%s): no error", bad)
		}
	}
}

func TestParsePing(t *testing.T) {
	out := `PING 10.68.255.192 (10.68.255.192) 56(84) bytes of data.
64 bytes from 10.68.255.192: icmp_seq=1 ttl=62 time=0.092 ms
64 bytes from 10.68.255.192: icmp_seq=2 ttl=62 time=0.051 ms
64 bytes from 10.68.255.192: icmp_seq=4 ttl=62 time=1.20 ms

--- 10.68.255.192 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 31ms
rtt min/avg/max/mdev = 0.051/0.447/1.200/0.533 ms
`
	got, err := parsePing(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.092, 0.051, 1.2}
	if len(got) != len(want) {
		t.Fatalf("parsePing = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parsePing = %v, want %v", got, want)
			break
		}
	}
	if _, err := parsePing("1 packets transmitted, 0 received, 100% packet loss\n"); err == nil {
		t.Error("parsePing without replies: no error")
	}
}

func TestParseCNIResult(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{name: "v4", in: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.68.100.128/32","interface":0}]}`, want: "10.68.100.128"},
		{name: "v6 first", in: `{"ips":[{"address":"fd68::1/128"},{"address":"10.69.0.5/32"}]}`, want: "10.69.0.5"},
		{name: "v6 only", in: `{"ips":[{"address":"fd68::1/128"}]}`, err: true},
		{name: "no ips", in: `{"cniVersion":"1.0.0"}`, err: true},
		{name: "not json", in: `plugin crashed`, err: true},
	} {
		got, err := parseCNIResult([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: parseCNIResult = %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestVXLANDetails(t *testing.T) {
	out := `3: vxlan.calyx: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN mode DEFAULT group default
    link/ether 76:ab:2f:bb:2f:0a brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 minmtu 68 maxmtu 65535
    vxlan id 4096 local 192.0.2.11 srcport 0 0 dstport 4789 nolearning ttl auto ageing 300 udpcsum addrgenmode eui64
`
	if got, want := vxlanDetails(out), "vxlan id 4096 local 192.0.2.11 srcport 0 0 dstport 4789 nolearning ttl auto ageing 300 udpcsum addrgenmode eui64"; got != want {
		t.Errorf("vxlanDetails = %q, want %q", got, want)
	}
	if got := vxlanDetails("2: eth0@if2: <UP> mtu 1500\n    veth addrgenmode eui64\n"); got != "" {
		t.Errorf("vxlanDetails of a veth = %q, want none", got)
	}
}
