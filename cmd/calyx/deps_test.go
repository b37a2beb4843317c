package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the plugin binaries thin: a runtime starts one per CNI
// call, so they must start fast and link nothing of the agent's.
func TestDeps(t *testing.T) {
	const mod = "github.com/calyx-net/calyx/"
	banned := []string{
		mod + "internal/agent", mod + "internal/dataplane", mod + "internal/bgp", mod + "internal/datastore",
		mod + "internal/ipam", mod + "internal/calc", "go.etcd.io/", "github.com/osrg/gobgp", "google.golang.org/grpc",
		"github.com/prometheus/", "github.com/spf13/cobra", "sigs.k8s.io/yaml",
		// localapi's client speaks HTTP itself: net/http's client links
		// TLS and X.509, and doubled the plugin's size and start-up.
		"net/http", "crypto/tls", "crypto/x509",
	}
	for _, cmd := range []string{mod + "cmd/calyx", mod + "cmd/calyx-ipam"} {
		out, err := exec.Command("go", "list", "-deps", cmd).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", cmd, err)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b) && (strings.HasSuffix(b, "/") || strings.HasPrefix(dep, b+"/")) {
					t.Errorf("%s depends on %s: the CNI plugins must not link %s", cmd, dep, b)
				}
			}
		}
	}
}
