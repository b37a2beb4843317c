// Command calyx is Calyx's CNI plugin. See README.md.
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
	skel.PluginMainFuncs(cni.NewPlugin(os.Stdout, os.Stderr).Funcs(), cniversion.All, "CNI plugin calyx "+version)
}
