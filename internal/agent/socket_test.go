package agent

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --socket replaces only a stale socket; a regular file, a directory, a
// symbolic link or a socket another process serves is refused with an
// error naming the path, and left as it was.
func TestListenUnixReplacesOnlyStaleSockets(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = sl.Close() // as a calyx-node killed with -9 leaves it
	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ll.Close() }()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(stale, link); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, err string
	}{
		{"missing", filepath.Join(dir, "new", "calyx.sock"), ""},
		{"stale socket", stale, ""},
		{"live socket", live, "another process (a running calyx-node?) is serving it"},
		{"regular file", file, "a regular file is there, not a socket"},
		{"directory", sub, "a directory is there, not a socket"},
		{"symbolic link", link, "a symbolic link is there, not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := listenUnix(tc.path)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = l.Close() }()
				c, err := net.Dial("unix", tc.path)
				if err != nil {
					t.Fatalf("dialling the new socket: %v", err)
				}
				_ = c.Close()
				return
			}
			if err == nil {
				_ = l.Close()
				t.Fatalf("listenUnix(%s) succeeded, want %q", tc.path, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q, want %q naming %s", err, tc.err, tc.path)
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("the regular file after the refusal: %q, %v", b, err)
	}
	if st, err := os.Stat(sub); err != nil || !st.IsDir() {
		t.Errorf("the directory after the refusal: %v", err)
	}
	if c, err := net.Dial("unix", live); err != nil {
		t.Errorf("the live socket after the refusal: %v", err)
	} else {
		_ = c.Close()
	}
}
