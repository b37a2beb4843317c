// Package netns runs kernel work in the network namespace calyx-node
// programs, which need not be the one its goroutines happen to run in.
//
// Why: in production calyx-node programs the namespace it runs in, and
// every call here is a plain function call. Tests (and a calyx-node that
// runs in a container but programs the host) name another namespace. A
// netlink socket stays bound to the namespace it was created in, so a
// Handle made once in the target namespace serves every goroutine without
// switching threads. /proc/sys/net, however, follows the namespace of the
// thread that opens a file, so sysctl reads and writes must run on a thread
// switched into the target: Do does that, locking the OS thread for the
// duration (containernetworking/plugins ns.Do) and skipping the switch
// entirely when the target is calyx-node's own namespace.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NS is a network namespace to work in.
type NS struct {
	path string
	// target is nil when the namespace is the process's own: work runs
	// in place.
	target ns.NetNS
}

// Open opens the network namespace at path (e.g. /run/netns/host-a or
// /proc/1/ns/net). An empty path, or a path naming the process's own
// namespace, means the process's own namespace.
func Open(path string) (*NS, error) {
	if path == "" {
		return &NS{path: selfPath}, nil
	}
	same, err := sameFile(path, selfPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	if same {
		return &NS{path: path}, nil
	}
	t, err := ns.GetNS(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return &NS{path: path, target: t}, nil
}

// selfPath names the process's network namespace.
const selfPath = "/proc/self/ns/net"

// sameFile reports whether a and b are the same namespace file.
func sameFile(a, b string) (bool, error) {
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := syscall.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// Path is the namespace's path as given to Open (/proc/self/ns/net for
// the process's own).
func (n *NS) Path() string { return n.path }

// Own reports whether the namespace is the process's own.
func (n *NS) Own() bool { return n.target == nil }

// Do runs fn on a thread in the namespace and returns its error. fn must
// not start goroutines that expect to stay in the namespace.
func (n *NS) Do(fn func() error) error {
	if n.target == nil {
		return fn()
	}
	var inner error
	if err := n.target.Do(func(ns.NetNS) error {
		inner = fn()
		return nil
	}); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", n.path, err)
	}
	return inner
}

// NewNetlinkHandle returns a netlink handle whose sockets live in the
// namespace; it may be used from any goroutine. Close it when done.
func (n *NS) NewNetlinkHandle() (*netlink.Handle, error) {
	var h *netlink.Handle
	err := n.Do(func() error {
		var err error
		h, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening netlink in %s: %w", n.path, err)
	}
	return h, nil
}

// ReadSysctl reads /proc/sys/<key> (e.g. "net/ipv4/ip_forward") in the
// namespace; call it inside Do when the namespace may not be the
// process's own. A missing key satisfies errors.Is(err, fs.ErrNotExist).
//
// It makes three system calls (open, one read, close) where os.ReadFile
// makes six (it also registers the file with the poller, stats it and
// reads until EOF): a resync reads several sysctls of every endpoint's
// link. A sysctl's handler returns its whole value in one read when the
// buffer holds it, so a short read is the end.
func ReadSysctl(key string) (string, error) {
	path := "/proc/sys/" + key
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", key, &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer func() { _ = unix.Close(fd) }()
	var buf [128]byte
	var out []byte // a value longer than buf
	for {
		n, err := unix.Read(fd, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading sysctl %s: %w", key, &fs.PathError{Op: "read", Path: path, Err: err})
		}
		if n < len(buf) && out == nil {
			// trimmed before the conversion: a value of one byte, as most
			// are, then needs no memory of its own
			return string(trimNewline(buf[:n])), nil
		}
		out = append(out, buf[:n]...)
		if n < len(buf) {
			return string(trimNewline(out)), nil
		}
	}
}

// WriteSysctl writes value to /proc/sys/<key>; call it inside Do when the
// namespace may not be the process's own.
func WriteSysctl(key, value string) error {
	f, err := os.OpenFile("/proc/sys/"+key, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("writing sysctl %s=%s: %w", key, value, err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("writing sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

func trimNewline(s []byte) []byte {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// Close releases the namespace handle.
func (n *NS) Close() error {
	if n.target == nil {
		return nil
	}
	return n.target.Close()
}
