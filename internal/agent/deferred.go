package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/calyx-net/calyx/internal/atomicfile"
)

// Deferred releases. calyx-ipam, the IPAM plugin of another CNI plugin,
// holds addresses by handle with no endpoint and no veth, so garbage
// collection cannot tell when they are abandoned. A runtime must still be
// able to tear its containers down during a datastore outage: an IPAM DEL
// that cannot reach etcd records the handle in a journal in the data
// directory and succeeds, and calyx-node releases the handle once etcd is
// back. The journal survives restarts. An IPAM ADD of a handle whose
// release is pending completes that release first, so a pending release
// never frees a newer allocation of the same handle.

// pendingReleasesFile is the journal's name in the data directory.
const pendingReleasesFile = "pending-releases"

// DefaultDeferredReleaseInterval is how often calyx-node tries the pending
// releases while etcd is available.
const DefaultDeferredReleaseInterval = time.Second

// pendingRelease is one line of the journal.
type pendingRelease struct {
	Handle string    `json:"handle"`
	Since  time.Time `json:"since"` // when the DEL was answered
}

// deferredReleases is the journal of IPAM releases waiting for the
// datastore: in memory, and rewritten atomically (and fsynced) to its file
// on every change.
type deferredReleases struct {
	path string
	mu   sync.Mutex // guards m and the file
	m    map[string]time.Time
}

// loadDeferredReleases reads the journal in dir (none: empty).
func loadDeferredReleases(dir string) (*deferredReleases, error) {
	d := &deferredReleases{path: filepath.Join(dir, pendingReleasesFile), m: map[string]time.Time{}}
	b, err := os.ReadFile(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pending IPAM releases: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var p pendingRelease
		if err := json.Unmarshal(text, &p); err != nil || p.Handle == "" {
			return nil, fmt.Errorf("%s line %d: expected a JSON object with a non-empty \"handle\", got %q (the file lists IPAM handles whose release waits for etcd; fix or delete the line)", d.path, line, text)
		}
		d.m[p.Handle] = p.Since
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", d.path, err)
	}
	return d, nil
}

// add records that handle's release is pending.
func (d *deferredReleases) add(handle string, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[handle]; ok {
		return nil
	}
	d.m[handle] = now
	if err := d.writeLocked(); err != nil {
		delete(d.m, handle)
		return err
	}
	return nil
}

// remove forgets handle's pending release, once it is done.
func (d *deferredReleases) remove(handle string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	since, ok := d.m[handle]
	if !ok {
		return nil
	}
	delete(d.m, handle)
	if err := d.writeLocked(); err != nil {
		d.m[handle] = since
		return err
	}
	return nil
}

// has reports whether handle's release is pending.
func (d *deferredReleases) has(handle string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[handle]
	return ok
}

// handles returns the pending handles, oldest first.
func (d *deferredReleases) handles() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	hs := make([]string, 0, len(d.m))
	for h := range d.m {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b string) int {
		if c := d.m[a].Compare(d.m[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return hs
}

// writeLocked replaces the file by the journal in memory: written to a
// temporary file, fsynced, renamed over the old one, and the directory
// fsynced, so that a crash leaves the old journal or the new one.
func (d *deferredReleases) writeLocked() error {
	hs := make([]string, 0, len(d.m))
	for h := range d.m {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, h := range hs {
		if err := enc.Encode(pendingRelease{Handle: h, Since: d.m[h]}); err != nil {
			return fmt.Errorf("encoding the pending IPAM releases: %w", err)
		}
	}
	if err := atomicfile.Write(d.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("saving the pending IPAM releases: %w", err)
	}
	return nil
}

// deferRelease records handle's release for later when err, what an IPAM
// DEL met, is a datastore outage (or the claim lapsed in one), and then
// returns nil; other errors, and every error without a journal, are
// returned unchanged. ctx is the request's bounded context.
func (s *service) deferRelease(ctx context.Context, handle string, err error) error {
	down := s.outageError(ctx, err)
	if s.deferred == nil || !isOutage(down) && !errors.Is(down, errClaimLapsed) {
		return err
	}
	if jerr := s.deferred.add(handle, s.now()); jerr != nil {
		return fmt.Errorf("%w (and recording the release for when etcd is back failed: %w)", err, jerr)
	}
	s.log.Warn("IPAM DEL without the datastore: the release of the handle is queued and done once etcd is back",
		"handle", handle, "journal", s.deferred.path, "err", down)
	return nil
}

// completeDeferred does handle's pending release, if any, before an IPAM
// ADD allocates for it again; the caller holds the handle's lock.
func (s *service) completeDeferred(ctx context.Context, handle string) error {
	if s.deferred == nil || !s.deferred.has(handle) {
		return nil
	}
	if err := s.alloc.ReleaseByHandle(ctx, handle); err != nil {
		return fmt.Errorf("completing the release of %s queued by a DEL during a datastore outage: %w", handle, err)
	}
	if err := s.deferred.remove(handle); err != nil {
		return err
	}
	s.log.Info("released the addresses of a DEL queued during a datastore outage, before a new ADD of the handle", "handle", handle)
	return nil
}

// runDeferredReleases does the pending releases whenever the datastore is
// available, every interval, until ctx ends.
func (s *service) runDeferredReleases(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.drainDeferred(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drainDeferred tries each pending release once, while etcd is available.
func (s *service) drainDeferred(ctx context.Context) {
	if s.deferred == nil {
		return
	}
	for _, h := range s.deferred.handles() {
		if ctx.Err() != nil || s.unavailable() != nil {
			return
		}
		if err := s.releaseDeferred(ctx, h); err != nil {
			s.log.Warn("queued IPAM release failed; trying again later", "handle", h, "err", err)
			if isOutage(err) {
				return
			}
		}
	}
}

// releaseDeferred does one pending release under the handle's lock, if
// this process still holds the node claim, and then forgets it.
func (s *service) releaseDeferred(ctx context.Context, handle string) error {
	dctx, cancel := s.datastoreContext(ctx)
	defer cancel()
	unlock, err := s.locks.lock(dctx, handle)
	if err != nil {
		return fmt.Errorf("waiting for other work on attachment %s: %w", handle, s.outageError(dctx, err))
	}
	defer unlock()
	if !s.deferred.has(handle) {
		return nil // an ADD of the handle did it
	}
	if err := s.checkClaim(dctx); err != nil {
		return s.outageError(dctx, err)
	}
	if err := s.alloc.ReleaseByHandle(dctx, handle); err != nil {
		return s.outageError(dctx, fmt.Errorf("releasing the addresses of %s: %w", handle, err))
	}
	if err := s.deferred.remove(handle); err != nil {
		return err
	}
	s.log.Info("released the addresses of a DEL queued during a datastore outage", "handle", handle)
	return nil
}
