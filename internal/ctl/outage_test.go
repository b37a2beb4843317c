package ctl

import (
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/testnet"
)

// calyxctl tells "reachable but without a leader" from "unreachable", in
// one line naming every endpoint.
func TestEtcdNoLeaderOrUnreachable(t *testing.T) {
	cl := testnet.StartEtcdCluster(t, 3, testnet.EtcdClusterOptions{})
	eps := cl.ClientFlags()
	mustRun(t, eps, "", "get", "ippools")

	check := func(what, state string) {
		t.Helper()
		_, _, err := run(t, eps, "", "get", "ippools")
		if err == nil {
			t.Fatalf("calyxctl get with %s succeeded", what)
		}
		msg := err.Error()
		wantContains(t, "the error with "+what, msg, append([]string{state}, cl.Endpoints()...)...)
		if strings.Contains(msg, "\n") {
			t.Errorf("the error with %s spans lines:\n%s", what, msg)
		}
	}
	cl.Stop(0)
	cl.Stop(1)
	check("two of three members down", "has no leader")
	cl.Stop(2)
	check("every member down", "unreachable")
}
