// Command calyx-ipam is Calyx's CNI IPAM plugin. See README.md.
package main

import (
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/calyx-net/calyx/internal/cni"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// One P, unless GOMAXPROCS says otherwise. A plugin's own work is one
	// local API exchange and a few syscalls, and a second P only has the
	// scheduler spin threads looking for work and hand goroutines between
	// them, CPU that a burst of ADDs takes from the other plugins. A
	// goroutine waiting on the kernel or on calyx-node lets the other run,
	// so the veth is still created while calyx-node answers.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	skel.PluginMainFuncs(cni.NewIPAM(os.Stdout, os.Stderr).Funcs(), cniversion.All, "CNI IPAM plugin calyx-ipam "+version)
}
