package netns

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/nlsafe"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestOpenOwn(t *testing.T) {
	n, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Own() {
		t.Error("the empty path is not the process's own namespace")
	}
	ran := false
	if err := n.Do(func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Do in the own namespace: ran %v, err %v", ran, err)
	}
	if _, err := ReadSysctl("net/no/such/key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: %v, want fs.ErrNotExist", err)
	}
}

// A value of one byte, as most sysctls hold, costs no memory of its own
// (calyx-node keeps several for each endpoint): reading one allocates less
// than reading a longer value (the path and its C string are allocated
// for both; counts differ with the race detector, so only the difference
// is checked). A longer value is read whole.
func TestReadSysctlValues(t *testing.T) {
	read := func(key string, check func(string) bool) float64 {
		return testing.AllocsPerRun(20, func() {
			if v, err := ReadSysctl(key); err != nil || !check(v) {
				t.Fatalf("%s: %q, %v", key, v, err)
			}
		})
	}
	one := read("net/ipv4/conf/lo/forwarding", func(v string) bool { return len(v) == 1 })
	long := read("kernel/osrelease", func(v string) bool { return len(v) >= 3 && !strings.ContainsAny(v, "\n ") })
	if one >= long {
		t.Errorf("reading a one-byte value allocated %v times, a release %v times: want fewer", one, long)
	}
}

func TestOtherNamespace(t *testing.T) {
	target := testnet.NewNS(t)
	n, err := Open(target.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Own() {
		t.Fatal("a new namespace is reported as the process's own")
	}
	// The sysctl is written and read in the target, not here.
	if err := n.Do(func() error { return WriteSysctl("net/ipv4/conf/lo/forwarding", "1") }); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := n.Do(func() error {
		var err error
		got, err = ReadSysctl("net/ipv4/conf/lo/forwarding")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != "1" {
		t.Errorf("forwarding on lo in the target is %q, want 1", got)
	}
	h, err := n.NewNetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := nlsafe.LinkList(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		var names []string
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		t.Errorf("links in the new namespace: %v, want only lo", names)
	}
}
