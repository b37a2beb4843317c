// Command calyx-ipam is Calyx's CNI IPAM plugin. See README.md.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/calyx-net/calyx/internal/cni"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cni.OneProc()
	skel.PluginMainFuncs(cni.NewIPAM(os.Stdout, os.Stderr).Funcs(), cniversion.All, "CNI IPAM plugin calyx-ipam "+version)
}
