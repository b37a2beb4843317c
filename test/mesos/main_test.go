package mesos

import (
	"os"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package ("" when not
// root: only the tests that need no kernel run).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(hostnode.RunTests(m, "calyx-mesos-bin", &binDir))
}
