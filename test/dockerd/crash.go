package dockerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Crash kills dockerd and the containerd it started with SIGKILL, as a
// crash of the Docker service would: nothing calls a plugin on the way
// down, and the containers keep running under their shims. StartAgain
// starts it again. (A containerd left running would not serve the new
// dockerd: dockerd 20.10 times out waiting for it.)
func (d *Daemon) Crash() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return errors.New("crash: dockerd is not running")
	}
	pidFile := filepath.Join(d.root, "exec", "containerd", "containerd.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("crash: reading containerd's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("crash: %s: %w", pidFile, err)
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	d.cmd, d.done = nil, nil
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("crash: killing containerd %d: %w", pid, err)
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("crash: containerd %d did not die", pid)
}

// StartAgain starts dockerd after Crash, with the same namespaces and
// data. Without --live-restore it stops the containers that outlived it
// and releases their networks, as after a crash on a real host.
func (d *Daemon) StartAgain(ctx context.Context) error { return d.start(ctx) }
