package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The data directory. One calyx-node at a time may use it: a second one
// would start a second embedded etcd on the same files and wait for a lock
// inside etcd forever. calyx-node takes an flock on DIR/lock before it
// starts anything (the kernel drops it when the process dies, however it
// dies) and keeps its pid in the file, for the error the next one prints.
//
// The directory also keeps the host identity, DIR/host-id: a random ID
// made once, which the node-name claim records, so that this host may take
// its own claim back at once after a crash (see claim.go).

// dataDirLock is a held lock on a data directory.
type dataDirLock struct {
	f *os.File
}

// lockDataDir creates dir if needed and locks it. It fails at once, never
// waiting, when another process holds the lock.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: creating it: %w", dir, err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--data-dir %s: opening the lock file: %w", dir, err)
	}
	if err := flockSoon(f); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf("another calyx-node (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("--data-dir %s is in use by %s: stop it, or give this one another --data-dir (and --socket)", dir, holder)
		}
		return nil, fmt.Errorf("--data-dir %s: locking %s: %w", dir, path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// flockSoon takes an exclusive flock on f, trying for about a second: a
// process forked by the previous holder in this process shares the lock's
// open file until it execs, so a restart in the same process can find the
// lock held for a moment after its holder closed it.
func flockSoon(f *os.File) error {
	var err error
	for range 20 {
		if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Close releases the lock. The pid is left in the file: the lock, not the
// file's content, says whether the directory is in use.
func (l *dataDirLock) Close() error {
	return l.f.Close()
}

// hostIDFile is the name of the host identity file in the data directory.
const hostIDFile = "host-id"

// loadHostID returns the host identity kept in dir, making it on first
// use: 32 hex digits, in a file of mode 0600.
func loadHostID(dir string) (string, error) {
	path := filepath.Join(dir, hostIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, derr := hex.DecodeString(id); derr != nil || len(id) != 32 {
			return "", fmt.Errorf("%s: expected 32 hex digits, got %q (delete the file to make a new host identity; the node names this host held must then wait for their claims to expire)", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading the host identity: %w", err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	id := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating the host identity: %w", err)
	}
	_, werr := f.WriteString(id + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("writing the host identity %s: %w", path, err)
	}
	return id, nil
}
