package cni

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// A runtime that passes the plugin's own namespace as CNI_NETNS asks the
// plugin to configure the host as if it were a container: a veth end named
// eth0 and a default route via 169.254.1.1 in the host's namespace, an
// endpoint and an address for it. skel notices only after ADD has done all
// that (and after the result is printed), so both plugins check first.

// ownNetnsPath is the calling thread's network namespace. /proc/self
// would name the thread group leader's, which differs while another
// goroutine's thread is inside a container's namespace (ns.Do).
const ownNetnsPath = "/proc/thread-self/ns/net"

// isOwnNetns reports whether the namespace at path is the one the plugin
// runs in, comparing the device and inode of the two nsfs files, as the
// kernel identifies namespaces. An empty path, or one that does not exist
// or cannot be read, is not the plugin's: the command's own handling of
// CNI_NETNS reports it.
func isOwnNetns(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	target, err := os.Stat(path)
	if err != nil {
		return false, nil
	}
	runtime.LockOSThread()
	own, err := os.Stat(ownNetnsPath)
	runtime.UnlockOSThread()
	if err != nil {
		return false, fmt.Errorf("reading the plugin's own network namespace: %w", err)
	}
	return sameFile(own, target), nil
}

func sameFile(a, b fs.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// checkNetns reports whether CNI_NETNS is the plugin's own namespace. It
// also tells skel that the check is done: skel repeats it after ADD and
// DEL return, and would then print a second JSON object (an error after
// ADD's result) or fail a DEL that had nothing to do. Its error is a CNI
// error (code 8).
func checkNetns(args *skel.CmdArgs, command string) (bool, error) {
	own, err := isOwnNetns(args.Netns)
	if err != nil {
		return false, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("%s: checking CNI_NETNS %s: %v", command, args.Netns, err), "")
	}
	args.NetnsOverride = "1"
	return own, nil
}

// ownNetnsError is the CNI error refusing the plugin's own namespace:
// code 8 (invalid netns), which skel also uses for it.
func ownNetnsError(args *skel.CmdArgs, command string) error {
	return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf(
		"%s refused: CNI_NETNS %s is the network namespace the plugin runs in (the host's), not a container's: the runtime must create a namespace for the container and pass its path; nothing was configured or allocated",
		command, args.Netns), "")
}

// refuseOwnNetns returns ownNetnsError when CNI_NETNS is the plugin's own
// namespace, for ADD and CHECK.
func refuseOwnNetns(args *skel.CmdArgs, command string) error {
	own, err := checkNetns(args, command)
	if err != nil {
		return err
	}
	if own {
		return ownNetnsError(args, command)
	}
	return nil
}
