package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package ("" when not
// root: every test then skips, saying it needs root).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(hostnode.RunTests(m, "calyx-e2e-bin", &binDir))
}

// bin returns the path of a built binary.
func bin(name string) string { return filepath.Join(binDir, name) }
