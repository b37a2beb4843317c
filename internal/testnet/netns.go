package testnet

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// RequireRoot skips the test unless it runs as root: kernel tests create
// network namespaces, which needs CAP_SYS_ADMIN. CI runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// NewNS creates a new network namespace, mounted under /run/netns (so
// `ip netns` sees it while the test runs), with its loopback up, and
// removes it when the test ends. It never touches the root namespace.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	if err := n.Do(func(ns.NetNS) error { return setLinkUp("lo") }); err != nil {
		t.Fatalf("bringing lo up in %s: %v", n.Path(), err)
	}
	return n
}
