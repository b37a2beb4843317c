package e2e

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
)

// TestCalyxctlIPAM seeds allocations through internal/ipam against a real
// calyx-node's etcd (the CNI plugins will make them once they exist) and
// drives calyxctl ipam show/release/check and delete node/ippool through
// the binary.
func TestCalyxctlIPAM(t *testing.T) {
	n := startNode(t, "e2e-ipam-1")
	mustCtl(t, n, "apply", "-f", "../../examples/10-ippools.yaml")
	_, errOut, err := n.ctlIn("apiVersion: calyx.dev/v1\nkind: Node\nmetadata: {name: e2e-ipam-2}\nspec: {}\n", "apply", "-f", "-")
	if err != nil {
		t.Fatalf("apply node: %v %s", err, errOut)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	store, err := datastore.New(ctx, n.etcdConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := ipam.New(store)
	r1, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Num6: 1, Handle: "calyx.c1.eth0", Node: "e2e-ipam-1",
		Attrs: map[string]string{"orchestrator": "mesos", "workload": "task-1"}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 2, Handle: "calyx.c2.eth0", Node: "e2e-ipam-2"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("show", func(t *testing.T) {
		out := mustCtl(t, n, "ipam", "show")
		for _, want := range []string{"default-ipv4", "10.65.0.0/16", "e2e-ipam-1", "e2e-ipam-2", "2^80"} {
			if !strings.Contains(out, want) {
				t.Errorf("ipam show lacks %q:\n%s", want, out)
			}
		}
		out = mustCtl(t, n, "ipam", "show", "--blocks")
		if !strings.Contains(out, "BLOCK") || strings.Count(out, "/26") < 2 {
			t.Errorf("ipam show --blocks:\n%s", out)
		}
		out = mustCtl(t, n, "ipam", "show", "--ip", r1.IPv6[0].String())
		for _, want := range []string{`assigned to handle "calyx.c1.eth0"`, "workload=task-1", "affine to node e2e-ipam-1"} {
			if !strings.Contains(out, want) {
				t.Errorf("ipam show --ip lacks %q:\n%s", want, out)
			}
		}
		if _, errOut, err := n.ctl("ipam", "show", "--ip", "192.0.2.1"); err == nil || !strings.Contains(errOut, "192.0.2.1 is outside every IP pool") {
			t.Errorf("show of an address outside the pools: %v %s", err, errOut)
		}
	})

	t.Run("release", func(t *testing.T) {
		ip := r2.IPv4[1].String()
		out := mustCtl(t, n, "ipam", "release", "--ip", ip)
		if !strings.Contains(out, "released "+ip) {
			t.Errorf("release: %s", out)
		}
		if out := mustCtl(t, n, "ipam", "show", "--ip", ip); !strings.Contains(out, "is not assigned") {
			t.Errorf("after release: %s", out)
		}
		if _, errOut, err := n.ctl("ipam", "release", "--ip", ip); err == nil || !strings.Contains(errOut, "not assigned") {
			t.Errorf("second release: %v %s", err, errOut)
		}
	})

	t.Run("delete pool in use is refused", func(t *testing.T) {
		_, errOut, err := n.ctl("delete", "ippool", "default-ipv4")
		if err == nil {
			t.Fatal("deleting a pool in use succeeded")
		}
		want := `IPPool "default-ipv4" (10.65.0.0/16) still has 2 allocated addresses (e2e-ipam-1: 1, e2e-ipam-2: 1)`
		if !strings.Contains(errOut, want) {
			t.Errorf("refusal lacks %q:\n%s", want, errOut)
		}
		mustCtl(t, n, "get", "ippool", "default-ipv4")
	})

	t.Run("check and fix", func(t *testing.T) {
		// No WorkloadEndpoints exist: every address is leaked. An
		// endpoint for c1's addresses makes them used.
		wep := "apiVersion: calyx.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: c1}\nspec: {node: e2e-ipam-1, orchestrator: mesos, " +
			"containerID: c1, endpoint: eth0, ipNetworks: [" + r1.IPv4[0].String() + "/32, " + r1.IPv6[0].String() + "/128]}\n"
		if out, errOut, err := n.ctlIn(wep, "apply", "-f", "-"); err != nil {
			t.Fatalf("apply wep: %v %s %s", err, out, errOut)
		}
		out := mustCtl(t, n, "ipam", "check")
		if !strings.Contains(out, "(leaked): 1") || !strings.Contains(out, r2.IPv4[0].String()) || !strings.Contains(out, "1 problems found") {
			t.Errorf("check:\n%s", out)
		}
		out, _, err := n.ctlIn("n\n", "ipam", "check", "--fix")
		if err != nil || !strings.Contains(out, "[y/N]") || !strings.Contains(out, "nothing changed") {
			t.Errorf("declined fix: %v\n%s", err, out)
		}
		out = mustCtl(t, n, "ipam", "check", "--fix", "-y")
		if !strings.Contains(out, "fixed 1 problems") {
			t.Errorf("fix -y:\n%s", out)
		}
		if out := mustCtl(t, n, "ipam", "check"); !strings.Contains(out, "no problems found") {
			t.Errorf("check after fix:\n%s", out)
		}
	})

	t.Run("delete node", func(t *testing.T) {
		r3, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "calyx.c3.eth0", Node: "e2e-ipam-2"})
		if err != nil {
			t.Fatal(err)
		}
		out := mustCtl(t, n, "delete", "node", "e2e-ipam-2", "--release-ips")
		if !strings.Contains(out, "node/e2e-ipam-2 deleted") || !strings.Contains(out, "1 addresses") {
			t.Errorf("delete node --release-ips:\n%s", out)
		}
		if out := mustCtl(t, n, "ipam", "show", "--ip", r3.IPv4[0].String()); !strings.Contains(out, "is not assigned") {
			t.Errorf("address of the deleted node:\n%s", out)
		}
		if out := mustCtl(t, n, "ipam", "show"); strings.Contains(out, "e2e-ipam-2") {
			t.Errorf("deleted node still holds blocks:\n%s", out)
		}
	})

	t.Run("delete pool once empty", func(t *testing.T) {
		mustCtl(t, n, "delete", "wep", "c1")
		mustCtl(t, n, "ipam", "release", "--ip", r1.IPv4[0].String(), "--ip", r1.IPv6[0].String())
		mustCtl(t, n, "delete", "ippool", "default-ipv4")
		if out := mustCtl(t, n, "ipam", "check"); !strings.Contains(out, "no problems found") {
			t.Errorf("check after deleting the pool:\n%s", out)
		}
	})
}
