package cni

import (
	"fmt"
	"os"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/cni: skipping: the CNI integration tests need root (network namespaces)")
		return 0
	}
	dir, cleanup, err := hostnode.BuildTemp("calyx-cni-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	return m.Run()
}
