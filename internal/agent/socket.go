package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listenUnix listens on the unix socket at path: it creates the
// directory, replaces a stale socket left by a calyx-node that died, and
// refuses anything else found there: a socket another process still
// serves, or a file that is no socket at all (a mistyped --socket must
// never delete a file). The socket is mode 0660, owned by root: only root
// on this host may allocate addresses and program endpoints.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("--socket %s: creating its directory: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	err = os.Chmod(path, 0o660)
	if err == nil && os.Geteuid() == 0 {
		err = os.Chown(path, 0, 0)
	}
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket makes way for a new socket at path: nothing there is
// fine, a socket nobody listens on is removed, anything else is refused.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--socket %s: %w", path, err)
	case st.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("--socket %s: a %s is there, not a socket: refusing to replace it (remove it, or pass another --socket)", path, fileKind(st.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("--socket %s: another process (a running calyx-node?) is serving it: stop it first, or pass another --socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("--socket %s: cannot tell whether the socket is still served, so not replacing it: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// fileKind names a file's type for an error message.
func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "device"
	}
	return "file of mode " + m.Type().String()
}
