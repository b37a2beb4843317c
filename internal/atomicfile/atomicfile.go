// Package atomicfile replaces small files so that a crash leaves either
// the old content or the new, never half of either: the state calyx-node
// keeps on disk (its etcd certificates, the journal of IPAM releases
// waiting for the datastore) is read back after exactly such crashes.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path by data with mode: written to a temporary file in the
// same directory, fsynced, renamed over path, and the directory fsynced so
// that the rename itself survives a crash.
func Write(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	_, werr := tmp.Write(data)
	if err := errors.Join(tmp.Chmod(mode), werr, tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the directory of %s: %w", path, err)
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return fmt.Errorf("syncing the directory of %s: %w", path, err)
	}
	return nil
}
