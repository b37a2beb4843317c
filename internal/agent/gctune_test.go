package agent

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/localapi"
)

func TestRestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{{12 << 20, 50}, {16 << 20, 50}, {20 << 20, 40}, {24 << 20, 30}, {29 << 20, 25}, {32 << 20, 25}, {1 << 30, 25}} {
		if got := restGCPercentFor(tc.live); got != tc.want {
			t.Errorf("restGCPercentFor(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

func TestBusyGCPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{{0, 100}, {8 << 20, 100}, {15 << 20, 100}, {16 << 20, 50}, {20 << 20, 40}, {29 << 20, 25}, {1 << 30, 25}} {
		if got := busyGCPercentFor(tc.live); got != tc.want {
			t.Errorf("busyGCPercentFor(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// A large live heap gets about 8 MiB of headroom, busy or not, and memory
// is returned on coming to rest; between the thresholds GOGC is lowered
// only at rest, and restored to Go's default by the next request at once.
func TestGCTuner(t *testing.T) {
	var sets []int
	tu := newGCTuner(slog.New(slog.DiscardHandler))
	tu.set = func(p int) { sets = append(sets, p) }
	tu.release = func() { sets = append(sets, 0) } // 0: memory released
	h := tu.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), cniWork)
	call := func(path string) func() {
		return func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, nil)) }
	}
	serve := call(localapi.PathCNIAdd)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { now = now.Add(10 * time.Second); return now } // one look

	steps := []struct {
		name string
		do   func()
		want []int // percentages set, 0 for a release of memory
	}{
		{"small heap at rest", func() { tu.tick(clock(), 10<<20, 0) }, nil},
		{"a request this interval, a 15 MiB live heap: Go's default", func() { serve(); tu.tick(clock(), 15<<20, 0) }, nil},
		{"busy, a larger live heap: 8 MiB of headroom", func() { serve(); tu.tick(clock(), 20<<20, 0) }, []int{40}},
		{"busy, a large live heap: 8 MiB of headroom, at least 25", func() { serve(); tu.tick(clock(), 40<<20, 0) }, []int{25}},
		{"large heap at rest: memory released", func() { tu.tick(clock(), 40<<20, 0) }, []int{0}},
		{"still at rest", func() { tu.tick(clock(), 40<<20, 0) }, nil},
		{"health and status polls are not work", func() { call(localapi.PathStatus)(); call(localapi.PathHealthz)(); tu.tick(clock(), 40<<20, 0) }, nil},
		{"between the thresholds at rest: the headroom follows the live heap", func() { tu.tick(clock(), 14<<20, 0) }, []int{50}},
		{"a request restores the busy percentage at once", call(localapi.PathIPAMDel), []int{100}},
		{"the next look after it: still busy, the heap large again", func() { tu.tick(clock(), 40<<20, 0) }, []int{25}},
		{"at rest again: memory released", func() { tu.tick(clock(), 40<<20, 0) }, []int{0}},
		{"the heap shrank at rest", func() { tu.tick(clock(), 10<<20, 0) }, []int{100}},
		{"a smaller large heap at rest: 8 MiB of headroom", func() { tu.tick(clock(), 20<<20, 0) }, []int{40, 0}},
		{"it grew at rest: lowered again, nothing released", func() { tu.tick(clock(), 40<<20, 0) }, []int{25}},
		{"it shrank at rest", func() { tu.tick(clock(), 10<<20, 0) }, []int{100}},
		{"between the thresholds at rest: kept at 100", func() { tu.tick(clock(), 14<<20, 0) }, nil},
		{"at rest, the heap 3 MiB beyond its live part: kept", func() { tu.tick(clock(), 14<<20, 3<<20) }, nil},
		{"busy, the heap far beyond its live part: kept", func() { serve(); tu.tick(clock(), 14<<20, 30<<20) }, nil},
		{"at rest, 4 MiB beyond: collected and returned", func() { tu.tick(clock(), 14<<20, 4<<20) }, []int{0}},
		{"at rest, 9 MiB beyond 3 s later: not yet again", func() { now = now.Add(-7 * time.Second); tu.tick(clock(), 14<<20, 9<<20) }, nil},
		{"13 s after the last: returned again", func() { tu.tick(clock(), 14<<20, 9<<20) }, []int{0}},
		{"at the next look, 3 MiB beyond: kept", func() { tu.tick(clock(), 14<<20, 3<<20) }, nil},
		{"a small heap at rest, 9 MiB beyond: returned too", func() { tu.tick(clock(), 8<<20, 9<<20) }, []int{0}},
		{"a large heap coming to rest with slack: lowered, returned once", func() { tu.tick(clock(), 40<<20, 9<<20) }, []int{25, 0}},
	}
	for _, s := range steps {
		sets = nil
		s.do()
		if !slices.Equal(sets, s.want) {
			t.Errorf("%s: set %v, want %v", s.name, sets, s.want)
		}
	}
}
