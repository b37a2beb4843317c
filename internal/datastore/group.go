package datastore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calyx-net/calyx/internal/ctxjoin"
)

// Group commit of single-resource writes.
//
// Why: Create, Update and Apply each write one key under a guard, one etcd
// transaction apiece. Most of what such a transaction costs (the gRPC
// request over TLS, the raft entry, the apply, the reply) does not depend on
// how many keys it writes, and a guarded transaction costs etcd and its
// client about a fifth more CPU than a plain put. When several goroutines
// write through one Client at once (an agent's concurrent CNI ADDs and its
// other writers), their writes are put in one transaction instead: every guard in
// its If, every put in its Then, and the reads that explain a failed guard
// in its Else. Each write keeps its own guard, so no write can overwrite a
// newer one; the group only shares the round trip.
//
// How: at most groupInFlight transactions are in flight per Client. A write
// arriving while fewer are in flight is sent at once, alone, so a lone
// writer waits for nobody. Writes arriving while the limit is reached queue
// up, and when a transaction returns, the queue (up to groupMaxOps writes,
// groupMaxBytes bytes, one write per key) becomes the next transaction. It
// is sent by the goroutine of its first write, so no goroutine outlives the
// calls that use it. A transaction whose guard fails (some write's guard
// did not hold) is judged write by write from its Else reads, read at the
// same revision as the guard: a write whose own guard failed ends with its
// error (or, for Apply, retries with a guard and identity from what it
// read), and the others are queued again and sent in the next transaction.
// A group that etcd refuses as too large is split into single writes.
// A transaction is sent with a context that ends when the contexts of all
// its writes have ended; a caller whose context ends returns at once, and
// its write, like any etcd request given up on in flight, may or may not
// have been stored.
const (
	groupInFlight = 2
	// groupMaxOps bounds the operations in each part of a group
	// transaction (compares, puts, reads): an external etcd refuses more
	// than 128 by default (--max-txn-ops).
	groupMaxOps = 128
	// groupMaxBytes bounds the bytes one group transaction writes: an
	// external etcd refuses requests over 1.5 MiB by default
	// (--max-request-bytes). A larger write is sent alone.
	groupMaxBytes = 512 << 10
)

// writeState is where a write is in the group commit.
type writeState int

const (
	writeQueued   writeState = iota // waiting for a transaction
	writeLeading                    // must send batch, which holds it
	writeInFlight                   // in a transaction being sent
	writeDone                       // rev or err is set
)

// groupWrite is one single-key guarded write.
type groupWrite struct {
	ctx context.Context
	// verb, kind and name describe the write in errors: "applying",
	// "WorkloadEndpoint", "w1".
	verb, kind, name string
	key              string
	size             int            // bytes of key and value
	cmps             []clientv3.Cmp // this attempt's guard
	put              clientv3.Op
	// reads are the Else reads that judge explains a failed guard with.
	reads []clientv3.Op
	// judge is called with the results of reads after a transaction
	// holding the write failed its guard. It reports whether the write's
	// own guard held (another write's failed), or else the error the write
	// ends with, or nil when it has made a new guess (changed cmps and put)
	// to be sent.
	judge func(reads []*etcdserverpb.ResponseOp) (held bool, err error)

	// Set by the group commit, under group.mu.
	state     writeState
	batch     []*groupWrite // when writeLeading
	solo      bool          // send alone (its group was too large)
	abandoned bool          // the caller returned
	wake      chan struct{} // signalled on every state change
	rev       int64         // when done without err: the revision written at
	err       error
}

// group is a Client's group commit state.
type group struct {
	mu       sync.Mutex // guards following fields and the state of every queued or in-flight write
	queue    []*groupWrite
	inFlight int
}

// describe says what w does, for errors.
func (w *groupWrite) describe() string { return fmt.Sprintf("%s %s %q", w.verb, w.kind, w.name) }

// commit writes w, alone or in a group transaction, and returns the
// revision it was written at, or the error it ended with.
func (c *Client) commit(ctx context.Context, w *groupWrite) (int64, error) {
	g := &c.group
	w.ctx = ctx
	w.wake = make(chan struct{}, 1)
	g.mu.Lock()
	g.queue = append(g.queue, w)
	g.scheduleLocked()
	for {
		switch w.state {
		case writeDone:
			g.mu.Unlock()
			return w.rev, w.err
		case writeLeading:
			batch := w.batch
			w.state, w.batch = writeInFlight, nil
			g.mu.Unlock()
			c.send(batch)
			g.mu.Lock()
			continue
		}
		if err := ctx.Err(); err != nil {
			if w.state == writeQueued {
				g.removeLocked(w)
			}
			w.abandoned = true
			g.mu.Unlock()
			return 0, c.wrapErr(w.describe(), err)
		}
		g.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
		}
		g.mu.Lock()
	}
}

// scheduleLocked starts transactions for queued writes while fewer than
// groupInFlight are in flight, making the first write of each its sender.
func (g *group) scheduleLocked() {
	for g.inFlight < groupInFlight && len(g.queue) > 0 {
		batch := g.takeLocked()
		g.inFlight++
		for _, w := range batch {
			w.state = writeInFlight
		}
		lead := batch[0]
		lead.state, lead.batch = writeLeading, batch
		signal(lead)
	}
}

// takeLocked removes from the queue, in order, the writes of the next
// transaction: one write per key, within groupMaxOps and groupMaxBytes,
// and a solo write only alone. It takes at least the first queued write.
func (g *group) takeLocked() []*groupWrite {
	first := g.queue[0]
	if first.solo {
		g.queue = g.queue[1:]
		return []*groupWrite{first}
	}
	var batch []*groupWrite
	var cmps, reads, size int
	rest := g.queue[:0]
	for i, w := range g.queue {
		fits := len(batch) == 0 || (!w.solo && len(batch) < groupMaxOps &&
			cmps+len(w.cmps) <= groupMaxOps && reads+len(w.reads) <= groupMaxOps &&
			size+w.size <= groupMaxBytes && !hasKey(batch, w.key))
		if !fits {
			rest = append(rest, w)
			if len(batch) >= groupMaxOps {
				rest = append(rest, g.queue[i+1:]...)
				break
			}
			continue
		}
		batch = append(batch, w)
		cmps, reads, size = cmps+len(w.cmps), reads+len(w.reads), size+w.size
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	return batch
}

func hasKey(batch []*groupWrite, key string) bool {
	for _, w := range batch {
		if w.key == key {
			return true
		}
	}
	return false
}

func (g *group) removeLocked(w *groupWrite) {
	for i, q := range g.queue {
		if q == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return
		}
	}
}

// signal wakes w's caller if it is not awake already.
func signal(w *groupWrite) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// send sends batch as one transaction and settles each write: done with
// the transaction's revision or an error, or queued again.
func (c *Client) send(batch []*groupWrite) {
	// One write's own context, or for several one that ends when all of
	// theirs have ended.
	ctxs := make([]context.Context, len(batch))
	for i, w := range batch {
		ctxs[i] = w.ctx
	}
	ctx, release := ctxjoin.All(ctxs)
	var cmps []clientv3.Cmp
	var reads []clientv3.Op
	puts := make([]clientv3.Op, len(batch))
	for i, w := range batch {
		cmps = append(cmps, w.cmps...)
		puts[i] = w.put
		reads = append(reads, w.reads...)
	}
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(puts...).Else(reads...).Commit()
	release()

	// Judge a failed guard before taking the lock: judge may encode.
	retry := make([]bool, len(batch))
	errs := make([]error, len(batch))
	switch {
	case err != nil && len(batch) > 1 && tooLarge(err):
		for i, w := range batch {
			w.solo, retry[i] = true, true
		}
	case err != nil:
		for i, w := range batch {
			errs[i] = c.wrapErr(w.describe(), err)
		}
	case !resp.Succeeded:
		allHeld := true
		off := 0
		for i, w := range batch {
			rs := resp.Responses[off : off+len(w.reads)]
			off += len(w.reads)
			held, err := w.judge(rs)
			retry[i], errs[i] = err == nil, err
			allHeld = allHeld && held
		}
		if allHeld {
			// Every write says its guard held, which cannot be: send them
			// alone, and fail one that says so alone rather than retry it
			// for ever.
			for i, w := range batch {
				if w.solo || len(batch) == 1 {
					retry[i], errs[i] = false, fmt.Errorf("%s: %w", w.describe(), errGuardHeld)
				}
				w.solo = true
			}
		}
	}

	g := &c.group
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	var again []*groupWrite
	for i, w := range batch {
		switch {
		case w.abandoned:
		case retry[i]:
			w.state = writeQueued
			again = append(again, w)
		default:
			w.state, w.err = writeDone, errs[i]
			if err == nil && resp.Succeeded {
				w.rev = resp.Header.Revision
			}
			signal(w)
		}
	}
	if len(again) > 0 {
		g.queue = append(again, g.queue...)
	}
	g.scheduleLocked()
}

// errGuardHeld is the error of a write whose transaction, sent alone,
// failed although the reads of its failure branch say its guard held.
var errGuardHeld = errors.New("the transaction's guard failed although the stored values satisfy it")

// tooLarge reports whether etcd refused a request for its size, which
// sending its writes apart cures.
func tooLarge(err error) bool {
	return errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) ||
		errors.Is(err, rpctypes.ErrGRPCTooManyOps) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge)
}
