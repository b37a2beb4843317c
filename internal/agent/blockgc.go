package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// Empty-block release. A host that ran many containers once keeps the
// blocks it claimed for them; Calico on etcd never gave them back, so a
// pool could run out of blocks while most of them sat empty. calyx-node
// releases its blocks that have stayed empty for blockGCGrace, checking
// every blockGCInterval. The grace period keeps a host that restarts its
// containers from giving up and re-claiming the same block each time.
const (
	blockGCInterval = time.Minute
	blockGCGrace    = 10 * time.Minute
)

// emptyBlockReleaser is the part of the IPAM allocator the block GC uses.
type emptyBlockReleaser interface {
	ReleaseEmptyBlocks(ctx context.Context, node string, now time.Time, grace time.Duration) ([]netip.Prefix, error)
}

// runBlockGC releases the node's long-empty blocks every interval until ctx
// ends, each time only after checkClaim says that this process holds the
// node's claim. Failures are logged and retried at the next tick.
//
// The release holds IPAM's lock on the node, which ADDs of the node wait
// for: the claim check and the release are each bounded by timeout (the
// datastore timeout; 0: unbounded), so that an etcd that stops answering
// holds an ADD up no longer than its own datastore work would be.
func runBlockGC(ctx context.Context, r emptyBlockReleaser, checkClaim func(context.Context) error, node string, interval, grace, timeout time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := boundedContext(ctx, timeout)
		err := checkClaim(cctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("not releasing empty IPAM blocks", "err", err)
			}
			continue
		}
		rctx, cancel := boundedContext(ctx, timeout)
		released, err := r.ReleaseEmptyBlocks(rctx, node, now(), grace)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("releasing empty IPAM blocks", "err", err)
		}
		for _, b := range released {
			log.Info("released empty IPAM block", "block", b.String(), "emptyFor", ">= "+grace.String())
		}
	}
}

// boundedContext is ctx bounded by timeout (0: not bounded).
func boundedContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}
