package cni

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/localapi"
)

// TestOwnNetns passes the plugin's own namespace as CNI_NETNS. The fakes
// stand for calyx-node and the kernel, so nothing here touches a namespace:
// ADD and CHECK of both plugins must fail with code 8 before calling
// either; DEL must succeed without touching an interface, releasing only
// through calyx-node.
func TestOwnNetns(t *testing.T) {
	ownArgs := func(stdin []byte) *skel.CmdArgs {
		a := cmdArgs(stdin)
		a.Netns = ownNetnsPath
		return a
	}
	prev := map[string]any{"cniVersion": "1.0.0", "interfaces": []any{map[string]any{"name": "eth0", "sandbox": ownNetnsPath}},
		"ips": []any{map[string]any{"address": "10.65.0.7/32", "interface": 0}}}
	for _, tc := range []struct {
		name string
		call func(r *run, args *skel.CmdArgs) error
		prev bool
	}{
		{"calyx ADD", func(r *run, a *skel.CmdArgs) error { return r.plugin.Add(t.Context(), a) }, false},
		{"calyx CHECK", func(r *run, a *skel.CmdArgs) error { return r.plugin.Check(t.Context(), a) }, true},
		{"calyx-ipam ADD", func(r *run, a *skel.CmdArgs) error { return r.ipam.Add(t.Context(), a) }, false},
		{"calyx-ipam CHECK", func(r *run, a *skel.CmdArgs) error { return r.ipam.Check(t.Context(), a) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t)
			extra := map[string]any{}
			if tc.prev {
				extra["prevResult"] = prev
			}
			err := tc.call(r, ownArgs(r.conf(t, "1.0.0", extra)))
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidNetNS || !strings.Contains(e.Msg, "CNI_NETNS "+ownNetnsPath+" is the network namespace the plugin runs in") {
				t.Fatalf("got %v, want a code 8 error naming %s", err, ownNetnsPath)
			}
			if calls := r.agent.paths(); len(calls) != 0 {
				t.Errorf("calyx-node was called: %v", calls)
			}
			if len(r.kernel.attached) != 0 || len(r.kernel.detached) != 0 {
				t.Errorf("kernel touched: attached %v, detached %v", r.kernel.attached, r.kernel.detached)
			}
			if r.stdout.Len() != 0 {
				t.Errorf("printed %s", r.stdout)
			}
		})
	}
	t.Run("calyx DEL", func(t *testing.T) {
		r := newRun(t)
		args := ownArgs(r.conf(t, "1.0.0", nil))
		if err := r.plugin.Del(t.Context(), args); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{localapi.PathCNIDel}, r.agent.paths()); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
		if len(r.kernel.detached) != 0 {
			t.Errorf("detached %v", r.kernel.detached)
		}
		if args.NetnsOverride != "1" {
			t.Errorf("skel would check CNI_NETNS again and fail the DEL: NetnsOverride %q", args.NetnsOverride)
		}
	})
	t.Run("calyx-ipam DEL", func(t *testing.T) {
		r := newRun(t)
		args := ownArgs(r.conf(t, "1.0.0", nil))
		if err := r.ipam.Del(t.Context(), args); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{localapi.PathIPAMDel}, r.agent.paths()); d != "" {
			t.Errorf("calls (-want +got):\n%s", d)
		}
		if args.NetnsOverride != "1" {
			t.Errorf("NetnsOverride %q", args.NetnsOverride)
		}
	})
}

func TestIsOwnNetns(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{ownNetnsPath, true},
		{"/proc/self/ns/net", true},
		{"", false},
		{"/nonexistent/netns", false},
		// Another namespace type: a different nsfs inode.
		{"/proc/thread-self/ns/uts", false},
	} {
		got, err := isOwnNetns(tc.path)
		if err != nil || got != tc.want {
			t.Errorf("isOwnNetns(%q) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
}
