package cni

import (
	"os"
	"runtime"
)

// OneProc runs the plugin on one P, unless GOMAXPROCS is in its
// environment. A plugin's own work is one local API exchange and a few
// syscalls, and a second P only has the scheduler spin threads looking for
// work and hand goroutines between them, CPU that a burst of ADDs takes
// from the other plugins. A goroutine waiting on the kernel or on
// calyx-node lets the other run, so the veth is still created while
// calyx-node answers. Both plugins call it first thing in main.
func OneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
