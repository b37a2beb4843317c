package agent

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestReturnFreeMemory(t *testing.T) {
	free := uint64(10)
	releases := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		returnFreeMemory(ctx, time.Millisecond, 100, func() uint64 { return free }, func() { releases <- struct{}{} }, slog.New(slog.DiscardHandler))
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	if len(releases) != 0 {
		t.Fatalf("released %d times under the threshold", len(releases))
	}
	cancel()
	<-done
	free = 200 // the loop has stopped: no race on free
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go returnFreeMemory(ctx, time.Millisecond, 100, func() uint64 { return free }, func() { releases <- struct{}{} }, slog.New(slog.DiscardHandler))
	select {
	case <-releases:
	case <-time.After(5 * time.Second):
		t.Fatal("never released above the threshold")
	}
}

// heapFree reads a real runtime metric: after garbage is dropped and
// collected, some of the heap is free.
func TestHeapFreeReads(t *testing.T) {
	junk := make([][]byte, 0, 64)
	for range 64 {
		junk = append(junk, make([]byte, 64<<10))
	}
	_ = junk
	junk = nil
	runtime.GC()
	if heapFree() == 0 {
		t.Error("heapFree() = 0 after freeing 4 MiB")
	}
	releaseMemory()
}
