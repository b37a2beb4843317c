// Package ctxjoin joins the contexts of requests served together: a batch
// of writes committed in one etcd transaction, or of IP allocations planned
// into one. The batch's work must go on while any request still waits for
// it (one caller giving up must not fail the others), and stop once none
// does.
package ctxjoin

import (
	"context"
	"sync/atomic"
)

// All returns a context that ends when every one of ctxs has ended, and
// the function that releases it. A single context is returned as it is, so
// that its cancellation and cause reach the caller unchanged. The values
// are those of ctxs[0]; ctxs must not be empty.
func All(ctxs []context.Context) (context.Context, context.CancelFunc) {
	if len(ctxs) == 1 {
		return ctxs[0], func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctxs[0]))
	var left atomic.Int64
	left.Store(int64(len(ctxs)))
	stops := make([]func() bool, len(ctxs))
	for i, c := range ctxs {
		stops[i] = context.AfterFunc(c, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
