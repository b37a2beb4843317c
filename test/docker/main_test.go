package docker

import (
	"fmt"
	"os"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package ("" when not
// root: the tests skip).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	dir, cleanup, err := hostnode.BuildTemp("calyx-docker-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	return m.Run()
}
