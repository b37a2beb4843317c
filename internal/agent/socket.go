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

	"github.com/calyx-net/calyx/internal/docker"
)

// listenUnix listens on the unix socket at path: it creates the
// directory, replaces a stale socket left by a calyx-node that died, and
// refuses anything else found there: a socket another process still
// serves, or a file that is no socket at all (a mistyped --socket must
// never delete a file). The socket is mode 0660, owned by root: only root
// on this host may allocate addresses and program endpoints.
func listenUnix(path string) (net.Listener, error) { return listenUnixFor("--socket", path) }

// listenUnixFor is listenUnix for the socket the flag names; errors name
// the flag.
func listenUnixFor(flag, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("%s %s: creating its directory: %w", flag, path, err)
	}
	if err := removeStaleSocket(flag, path); err != nil {
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
func removeStaleSocket(flag, path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s %s: %w", flag, path, err)
	case st.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s %s: a %s is there, not a socket: refusing to replace it (remove it, or pass another %s)", flag, path, fileKind(st.Mode()), flag)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("%s %s: another process (a running calyx-node?) is serving it: stop it first, or pass another %s", flag, path, flag)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s %s: cannot tell whether the socket is still served, so not replacing it: %w", flag, path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%s %s: removing the stale socket: %w", flag, path, err)
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

// dockerListeners are the Docker plugin sockets.
type dockerListeners struct{ network, ipam net.Listener }

// listenDocker creates the Docker plugin sockets in cfg.DockerPluginDir.
// They are mode 0660 like the local API's: dockerd runs as root.
func listenDocker(cfg Config) (*dockerListeners, error) {
	dir := cfg.DockerPluginDir
	n, err := listenUnixFor("--docker-plugin-dir", filepath.Join(dir, docker.NetworkDriverName+".sock"))
	if err != nil {
		return nil, err
	}
	i, err := listenUnixFor("--docker-plugin-dir", filepath.Join(dir, docker.IPAMDriverName+".sock"))
	if err != nil {
		_ = n.Close()
		return nil, err
	}
	return &dockerListeners{network: n, ipam: i}, nil
}

func (d *dockerListeners) close() {
	_ = d.network.Close()
	_ = d.ipam.Close()
}
