package testnet_test

import (
	"context"
	"testing"

	"github.com/calyx-net/calyx/internal/testnet"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }

func TestStartEtcd(t *testing.T) {
	e := testnet.StartEtcd(t)
	c := testnet.NewClient(t, e)
	ok, rev, err := c.CAS(context.Background(), nil, nil, []string{"/calyx/ipam/v1/x"})
	if err != nil || !ok || rev < 1 {
		t.Fatalf("CAS against the test etcd: %v %d %v", ok, rev, err)
	}
	// A second server in the same test gets its own ports and data.
	e2 := testnet.StartEtcd(t)
	if e2.Endpoints()[0] == e.Endpoints()[0] || e2.Config().DataDir == e.Config().DataDir {
		t.Errorf("two test servers share %v / %s", e.Endpoints(), e.Config().DataDir)
	}
}
