package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package ("" when not
// root: every test then skips, saying it needs root).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	dir, cleanup, err := hostnode.BuildTemp("calyx-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	return m.Run()
}

// bin returns the path of a built binary.
func bin(name string) string { return filepath.Join(binDir, name) }
