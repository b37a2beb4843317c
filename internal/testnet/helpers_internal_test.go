package testnet

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recordingTB is a testing.TB that keeps what is logged and ends the
// calling goroutine on Fatalf, as testing does.
type recordingTB struct {
	testing.TB
	logs  []string
	fatal string
}

func (r *recordingTB) Helper()         {}
func (r *recordingTB) Log(args ...any) { r.logs = append(r.logs, fmt.Sprint(args...)) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// onGoroutine runs fn on its own goroutine, so that a Fatalf ends only it.
func onGoroutine(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	rec := &recordingTB{}
	onGoroutine(func() { waitFor(rec, "three calls", time.Minute, func() bool { return calls.Add(1) >= 3 }) })
	if rec.fatal != "" {
		t.Fatalf("waitFor failed the test: %s", rec.fatal)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3 (it returns at the first true)", n)
	}
}

func TestWaitForFailsNamingWhat(t *testing.T) {
	rec := &recordingTB{}
	onGoroutine(func() { waitFor(rec, "the moon to turn blue", 50*time.Millisecond, func() bool { return false }) })
	if !strings.Contains(rec.fatal, "waiting for the moon to turn blue") {
		t.Errorf("Fatalf message = %q, want one naming what it waited for", rec.fatal)
	}
}

func TestLoggerWritesIntoTheTestLog(t *testing.T) {
	rec := &recordingTB{}
	Logger(rec).Debug("claiming block", "cidr", "10.65.0.0/26")
	if len(rec.logs) != 1 || !strings.Contains(rec.logs[0], "level=DEBUG") ||
		!strings.Contains(rec.logs[0], "cidr=10.65.0.0/26") || strings.HasSuffix(rec.logs[0], "\n") {
		t.Errorf("logged %q, want one debug line without a trailing newline", rec.logs)
	}
}

func TestIPPool(t *testing.T) {
	p := IPPool("p", "10.65.0.0/16", 28)
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		t.Errorf("IPPool fixture does not validate: %v", err)
	}
	if p.GetKind() != "IPPool" || p.Spec.BlockSize != 28 || p.Metadata.Name != "p" {
		t.Errorf("IPPool = %+v", p)
	}
}
