package agent

import (
	"context"
	"sync"

	"github.com/calyx-net/calyx/internal/dataplane/route"
)

// progress is what the reconcile loop publishes after each pass: the view
// sequence number it has programmed up to, each endpoint's last route
// programming outcome, and whether nftables is failing. READY waits on it
// instead of writing to the kernel itself.
type progress struct {
	mu sync.Mutex
	// seen is the sequence the last pass drained; programmed the last one
	// whose nftables transaction succeeded too.
	seen, programmed uint64
	status           map[string]outcome // by endpoint name
	policyErr        error
	ch               chan struct{} // closed and replaced on every publish
}

// outcome is an endpoint's last route programming: err nil when it was
// programmed, by the pass that drained the view up to seq.
type outcome struct {
	err error
	seq uint64
}

func newProgress() *progress {
	return &progress{status: map[string]outcome{}, ch: make(chan struct{})}
}

// publish records a pass over the view up to seq: status holds the
// endpoints it programmed (or failed to), policyErr the nftables failure.
func (p *progress) publish(seq uint64, status map[string]error, policyErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = seq
	if policyErr == nil {
		p.programmed = seq
	}
	for name, err := range status {
		p.status[name] = outcome{err: err, seq: seq}
	}
	p.policyErr = policyErr
	close(p.ch)
	p.ch = make(chan struct{})
}

// forget drops an endpoint's status (it was deleted).
func (p *progress) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.status, name)
}

// failing returns the nftables failure, if any.
func (p *progress) failing() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.policyErr
}

// wait waits until the view up to seq is programmed with endpoint name in
// it. A missing veth is final (the plugin did not create it) and returned
// at once; other failures are retried by the loop, so wait keeps waiting
// and, when ctx ends first, returns the last failure it saw.
func (p *progress) wait(ctx context.Context, name string, seq uint64) error {
	for {
		p.mu.Lock()
		o, known := p.status[name]
		err := o.err
		seen, programmed, policyErr, ch := p.seen, p.programmed, p.policyErr, p.ch
		p.mu.Unlock()
		if seen >= seq {
			switch {
			case known && route.IsLinkNotFound(err):
				return err
			case known && err == nil && programmed >= seq:
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			switch {
			case err != nil:
				return err
			case policyErr != nil:
				return policyErr
			}
			return ctx.Err()
		}
	}
}

// programmedSince waits until a pass has drained the view up to seq and
// reports whether that pass or a later one programmed endpoint name, its
// policy included. False means that it needs another pass: none
// programmed it since seq (its routes had not changed), or it failed
// (its veth did not exist yet), or ctx ended.
func (p *progress) programmedSince(ctx context.Context, name string, seq uint64) bool {
	for {
		p.mu.Lock()
		o, known := p.status[name]
		seen, programmed, ch := p.seen, p.programmed, p.ch
		p.mu.Unlock()
		if seen >= seq {
			return known && o.err == nil && o.seq >= seq && programmed >= seq
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
