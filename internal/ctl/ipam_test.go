package ctl

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }

// run executes calyxctl in-process with the datastore flags conn (from
// testnet.ClientFlags or EtcdCluster.ClientFlags) and the given stdin.
func run(t *testing.T, conn []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(Options{
		In: strings.NewReader(stdin), Out: &out, Err: &errb,
		Getenv:   func(string) string { return "" },
		ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist },
	})
	cmd.SetArgs(append(append([]string(nil), conn...), args...))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, conn []string, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, conn, stdin, args...)
	if err != nil {
		t.Fatalf("calyxctl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestIPAMCommands(t *testing.T) {
	e := testnet.StartEtcd(t)
	c := testnet.NewClient(t, e)
	ep := testnet.ClientFlags(e)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	in := "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: pool-a}\nspec: {cidr: 10.65.0.0/16}\n---\n" +
		"apiVersion: calyx.dev/v1\nkind: Node\nmetadata: {name: node-a}\nspec: {}\n---\n" +
		"apiVersion: calyx.dev/v1\nkind: Node\nmetadata: {name: node-b}\nspec: {}\n"
	mustRun(t, ep, in, "apply", "-f", "-")
	a := ipam.New(c)
	ra, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 2, Handle: "net.a.eth0", Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net.b.eth0", Node: "node-b"}); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, ep, "", "ipam", "show", "--blocks")
	wantContains(t, "ipam show", out, "pool-a", "10.65.0.0/16", "node-a", "node-b", "BLOCK")
	out = mustRun(t, ep, "", "ipam", "show", "--ip", ra.IPv4[0].String())
	wantContains(t, "ipam show --ip", out, ra.IPv4[0].String()+` is assigned to handle "net.a.eth0"`, "node=node-a", "affine to node node-a")

	// Deleting the pool is refused while it has addresses.
	_, errOut, err := run(t, ep, "", "delete", "ippool", "pool-a")
	if err == nil {
		t.Fatal("deleting a pool in use succeeded")
	}
	wantContains(t, "delete ippool error", err.Error()+errOut, `IPPool "pool-a" (10.65.0.0/16) still has 3 allocated addresses (node-a: 2, node-b: 1)`)

	// check finds the three leaked addresses (no endpoints); --fix asks.
	out = mustRun(t, ep, "n\n", "ipam", "check", "--fix")
	wantContains(t, "ipam check --fix (declined)", out, "leaked): 3", "Fix these 3 problems? [y/N]", "nothing changed")
	out = mustRun(t, ep, "", "ipam", "release", "--ip", ra.IPv4[1].String())
	wantContains(t, "ipam release", out, "released "+ra.IPv4[1].String())
	_, _, err = run(t, ep, "", "ipam", "release", "--ip", ra.IPv4[1].String())
	if err == nil || !strings.Contains(err.Error(), "not assigned") {
		t.Errorf("second release: %v", err)
	}
	out = mustRun(t, ep, "yes\n", "ipam", "check", "--fix")
	wantContains(t, "ipam check --fix", out, "leaked): 2", "fixed 2 problems")
	out = mustRun(t, ep, "", "ipam", "check")
	wantContains(t, "ipam check after fix", out, "no problems found")

	// delete node releases its affinities; --release-ips its addresses.
	if _, err := a.AutoAssign(ctx, ipam.AutoAssignArgs{Num4: 1, Handle: "net.c.eth0", Node: "node-b"}); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, ep, "", "delete", "node", "node-a")
	wantContains(t, "delete node", out, "node/node-a deleted", "node/node-a: released 1 blocks (1 deleted")
	out = mustRun(t, ep, "", "delete", "node", "node-b", "--release-ips")
	wantContains(t, "delete node --release-ips", out, "node/node-b: released 1 blocks (1 deleted, 0 kept with their addresses), 1 addresses")
	mustRun(t, ep, "", "delete", "ippool", "pool-a")
	vals, _, err := c.ReadRanges(ctx, []datastore.RawRange{{Key: datastore.IPAMPrefix, Prefix: true}})
	if err != nil || len(vals[0]) != 0 {
		t.Errorf("IPAM keys left after deleting every node and the pool: %v %v", vals, err)
	}
}
