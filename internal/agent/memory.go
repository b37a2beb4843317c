package agent

import (
	"context"
	"log/slog"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Returning the heap's free memory to the kernel.
//
// Go's runtime keeps the memory a burst of work freed (a thousand ADDs, a
// full resync, a snapshot after a reconnect) and hands it back to the
// kernel only slowly and only down to about its heap goal, twice the live
// heap: on a host at rest, calyx-node held some 30 MB of free heap
// beside 38 MB of live data at 1,000 endpoints (B10). An agent is judged
// by its footprint at rest, so calyx-node checks now and then how much
// free memory its heap holds and, beyond freeMemoryThreshold, returns it
// (runtime/debug.FreeOSMemory: a collection, then every free page back to
// the kernel). At rest that happens once after each burst; while busy, at
// most once per interval, each a collection of the live heap (milliseconds
// at 1,000 endpoints).
const (
	freeMemoryInterval  = time.Minute
	freeMemoryThreshold = 16 << 20
)

// releaseMemory returns the heap's free memory to the kernel.
func releaseMemory() { debug.FreeOSMemory() }

// heapFree reads the bytes of heap memory that are free and not yet
// returned to the kernel.
func heapFree() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// returnFreeMemory calls release whenever free() exceeds threshold at one
// of its checks, every interval, until ctx ends.
func returnFreeMemory(ctx context.Context, interval time.Duration, threshold uint64, free func() uint64, release func(), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if f := free(); f > threshold {
			release()
			log.Debug("returned the heap's free memory to the kernel", "bytes", f, "leftFree", free())
		}
	}
}
