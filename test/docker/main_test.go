package docker

import (
	"os"
	"testing"

	"github.com/calyx-net/calyx/test/hostnode"
)

// binDir holds the binaries built once for the whole package ("" when not
// root: the tests skip).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(hostnode.RunTests(m, "calyx-docker-bin", &binDir))
}
