package agent

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// dockerd creates a sandbox's namespace file, then bind-mounts the
// namespace on it: until then the gateway entries wait, they do not fail
// (a failure gave up on them, and on a host without a default route the
// container could not reach its gateway).
func TestGatewayNeighboursWaitForTheSandbox(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "47923a970184")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("ee:ee:ee:00:00:07")
	gws := []netip.Addr{netip.MustParseAddr("169.254.1.1")}
	for _, path := range []string{filepath.Join(dir, "missing"), file} {
		found, err := netlinkDocker{}.gatewayNeighbours(path, mac, gws)
		if found || err != nil {
			t.Errorf("gatewayNeighbours(%s) = %v, %v; want false, nil (not there yet)", path, found, err)
		}
	}
}
