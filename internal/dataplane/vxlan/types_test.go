package vxlan

import (
	"testing"
)

func TestMTU(t *testing.T) {
	for _, tc := range []struct {
		underlay int
		v6       bool
		want     int
	}{
		{1500, false, 1450},
		{1500, true, 1430},
		{9000, false, 8950},
		{9000, true, 8930},
	} {
		if got := MTU(tc.underlay, tc.v6); got != tc.want {
			t.Errorf("MTU(%d, %v) = %d, want %d", tc.underlay, tc.v6, got, tc.want)
		}
	}
}

func TestMACFor(t *testing.T) {
	seen := map[string]string{}
	for _, node := range []string{"node-a", "node-b", "node-c", "", "a-much-longer-host-name.example.com"} {
		m := MACFor(node)
		if len(m) != 6 {
			t.Fatalf("MACFor(%q) = %v: not 6 bytes", node, m)
		}
		if m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Errorf("MACFor(%q) = %v: want a locally administered unicast MAC", node, m)
		}
		if again := MACFor(node); again.String() != m.String() {
			t.Errorf("MACFor(%q) is not deterministic: %v then %v", node, m, again)
		}
		if other, dup := seen[m.String()]; dup {
			t.Errorf("MACFor(%q) = MACFor(%q) = %v", node, other, m)
		}
		seen[m.String()] = node
		if err := validMAC(m); err != nil {
			t.Errorf("MACFor(%q): %v", node, err)
		}
	}
}

func TestDesiredString(t *testing.T) {
	d := Desired{V4: v4Overlay(peerB)}
	want := "vxlan.calyx: vni 4096 dstport 4789 local 192.0.2.1 dev eth0 mtu 1450 address 02:aa:00:00:00:01 addr 10.244.0.1/32\n" +
		"  peer node-b 10.244.1.1 lladdr 02:bb:00:00:00:02 dst 192.0.2.2\n" +
		"vxlan-v6.calyx: absent"
	if got := d.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	if len(DeviceV4) > 15 || len(DeviceV6) > 15 {
		t.Errorf("device names longer than IFNAMSIZ-1: %q %q", DeviceV4, DeviceV6)
	}
}
