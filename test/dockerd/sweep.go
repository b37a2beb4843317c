package dockerd

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cleaning up after dockerd. A graceful stop leaves nothing: dockerd stops
// its containers, then its containerd. But a dockerd killed, or processes
// a test started with Command, can leave containerd, shims or container
// processes behind. They are found two ways: by mount namespace (every
// process dockerd, containerd and the shims start, and everything Command
// starts, shares the holder's), and by cgroup (a container's processes
// have mount namespaces of their own but live under the daemon's cgroup
// parent).

// sweep kills every process in the holder's mount namespace (except the
// holder) or under the daemon's cgroup parent, and waits until none is
// left. What it kills it logs: after a graceful stop that is a leak.
func (d *Daemon) sweep() error {
	holder := d.holder.Process.Pid
	mnt, err := nsID(holder, "mnt")
	if err != nil {
		return fmt.Errorf("reading the holder's mount namespace: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []int
		for _, pid := range procPIDs() {
			if pid == holder {
				continue
			}
			if id, err := nsID(pid, "mnt"); err == nil && id == mnt {
				left = append(left, pid)
			}
		}
		left = append(left, cgroupPIDs(d.cgroupParent())...)
		slices.Sort(left)
		left = slices.Compact(left)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes left in dockerd's namespaces or cgroups after SIGKILL: %s", describe(left))
		}
		d.logf("dockerd: killing what is left in its namespaces or cgroups: %s", describe(left))
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nsID identifies process pid's namespace of the given kind.
func nsID(pid int, kind string) ([2]uint64, error) {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return [2]uint64{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]uint64{}, errors.New("no stat for a namespace")
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}

// procPIDs lists every process's pid.
func procPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		parts = append(parts, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
	}
	return strings.Join(parts, ", ")
}

// cgroupMounts lists the mount points of the cgroup hierarchies (v1 and
// v2) in the machine's mount namespace.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, fstype := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(fstype) > 0 && (fstype[0] == "cgroup" || fstype[0] == "cgroup2") {
			out = append(out, fields[4])
		}
	}
	return out
}

// cgroupDirs lists the directories of cgroup parent, and of every cgroup
// below it, in every hierarchy; children come before their parents.
func cgroupDirs(parent string) []string {
	var dirs []string
	for _, mp := range cgroupMounts() {
		_ = filepath.WalkDir(filepath.Join(mp, parent), func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	slices.Reverse(dirs)
	return dirs
}

// cgroupPIDs lists the processes in parent and below.
func cgroupPIDs(parent string) []int {
	var pids []int
	for _, dir := range cgroupDirs(parent) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(l); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeCgroups removes parent and every cgroup below it, in every
// hierarchy. A cgroup whose last process has just died may still be busy
// for a moment, so it retries for a few seconds.
func removeCgroups(parent string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var errs []error
		for _, dir := range cgroupDirs(parent) {
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 || time.Now().After(deadline) {
			if len(errs) > 0 {
				return fmt.Errorf("removing dockerd's cgroups: %w", errors.Join(errs...))
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
