package nlsafe_test

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/calyx-net/calyx/internal/nlsafe"
)

// Links lists what LinkList does, with each link's up flag, in a
// namespace with enough links (403) that its dump takes many datagrams;
// LinkByName finds one, by its name or an alternative name, or says
// ENODEV.
func TestLinksKernel(t *testing.T) {
	type brief struct {
		Index int
		Up    bool
	}
	var got, want map[string]brief
	inVethNS(t, func(h *netlink.Handle, v *netlink.Veth) error {
		for i := range 200 {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("calyxtest%03d", i)}, PeerName: fmt.Sprintf("peer%03d", i)}
			if err := netlink.LinkAdd(v); err != nil {
				return err
			}
			if i%3 == 0 {
				if err := netlink.LinkSetUp(v); err != nil {
					return err
				}
			}
		}
		for name, up := range map[string]bool{"calyxtest000": true, "calyxtest001": false} {
			b, err := nlsafe.LinkByName(name)
			if err != nil || b.Name != name || b.Flags&unix.IFF_UP != 0 != up {
				t.Errorf("LinkByName(%s) = %+v, %v; want it up %v", name, b, err, up)
			}
		}
		for _, name := range []string{"calyxnosuch", "", "calyx-no-such-alternative-name"} {
			if b, err := nlsafe.LinkByName(name); !errors.Is(err, unix.ENODEV) {
				t.Errorf("LinkByName(%q) of a missing link = %+v, %v; want ENODEV", name, b, err)
			}
		}
		const alt = "calyx-alternative-name-0"
		if err := netlink.LinkAddAltName(v, alt); err != nil {
			return err
		}
		if b, err := nlsafe.LinkByName(alt); err != nil || b.Name != "calyxtest0" {
			t.Errorf("LinkByName(%s) = %+v, %v; want calyxtest0, its alternative name's", alt, b, err)
		}
		// calyx-node looks up each endpoint's veth at every resync: a
		// lookup allocates about its reply, not a dump's buffer.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const lookups = 50
		for range lookups {
			if _, err := nlsafe.LinkByName("calyxtest000"); err != nil {
				return err
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / lookups; per > 8<<10 {
			t.Errorf("LinkByName allocated %d bytes a lookup, want at most 8 KiB", per)
		}
		bs, err := nlsafe.Links()
		if err != nil {
			return err
		}
		got = map[string]brief{}
		for _, b := range bs {
			got[b.Name] = brief{b.Index, b.Flags&unix.IFF_UP != 0}
		}
		ls, err := nlsafe.LinkList(h)
		if err != nil {
			return err
		}
		want = map[string]brief{}
		for _, l := range ls {
			want[l.Attrs().Name] = brief{l.Attrs().Index, l.Attrs().RawFlags&unix.IFF_UP != 0}
		}
		return nil
	})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Links (-LinkList +Links):\n%s", d)
	}
	if len(got) != 403 || !got["calyxtest000"].Up || got["calyxtest001"].Up {
		t.Errorf("Links listed %d links (want 403), calyxtest000 %+v (want up), calyxtest001 %+v (want down): %v",
			len(got), got["calyxtest000"], got["calyxtest001"], slices.Sorted(maps.Keys(got)))
	}
}
