package agent

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"time"
)

// calyx-node holds the cluster's routes, policies and endpoints for its
// whole life. With Go's default GOGC of 100 its heap grows to twice what
// is live; on a host with many endpoints and policies that doubling is
// most of its memory. So once its live heap is large (restHeap), the tuner
// sets GOGC for about restHeadroom of growth past it (50 for a live heap
// of 16 MiB, 25, the floor, from about 27 MiB): a fixed headroom, rather
// than a fixed percentage, keeps what each endpoint costs close to what it
// keeps live. A smaller heap keeps Go's default while calyx-node serves
// requests (ADDs would pay for more collections, for a few MB), and gets
// the rest percentage once nothing was asked of it for a tuning interval.
//
// The headroom holds while busy too: while calyx-node programs endpoints,
// what it keeps of each (routes, policy state) is allocated among each
// request's garbage, and Go never moves an object, so a span that holds
// one kept object stays in use after the burst. The higher the heap's goal
// while busy, the more spans the kept objects end up spread over.
// bench/footprint, free room in used spans at rest after attaching 1,000
// endpoints (3.0-3.4 MB at 0 endpoints):
//
//   - GOGC 100 while busy: 8.2-8.6 MB (four runs), 16-19 KiB of RSS per
//     endpoint;
//   - 16 MiB of headroom while busy, GOGC 50 at least: 6.8-7.3 MB (four
//     runs), 15.5-18.0 KiB;
//   - the rest percentage while busy: 5.1-5.2 MB (two runs), 15.4-15.5
//     KiB; the 1,000 ADDs took 7.3 and 8.7 s, against 7.0-8.4 s with 16
//     MiB (78-79% of a core against 72-76%);
//   - GOGC 25 throughout (GOGC in the environment): 4.1 MB.
//
// Earlier figures (bench/footprint, 1,000 endpoints at rest): 116.6 MB RSS
// and 0.54% of a core with 100 throughout; 92.7 MB and 0.68% with GOGC 50
// at rest. Later code with smaller caches (a live heap of 29 MiB) measured
// 105.4 MB without the slack rule below (the free memory not returned was
// 20 MB); 84.9 MB and 0.64% with it applied at every look; and, with it at
// most once a minute, 109.7 MB while restHeap was 32 MiB (so GOGC stayed
// at 100) and 87.2 MB and 0.68% with restHeap at 16 MiB and GOGC 50.
// bench/cni's bursts (a live heap under restHeap) measured more CPU per ADD
// with 50 throughout. With 8 MiB of headroom and slack (at most once a
// minute) it measured 74.7 and 79.3 MB of RSS, 19.9 and 24.1 KiB per
// endpoint; with the slack at 4 MiB (at most every 30 s), 72.1 and 73.2
// MB, 17.0 and 15.8 KiB, for 0.06-0.08% more of a core (0.67-0.78%).
//
// At rest the tuner also keeps the heap near its live size: when the heap
// holds restSlack or more beyond what is live (garbage not yet collected,
// and free memory the runtime has not returned), it collects and returns
// that memory to the kernel at once. Left to the runtime, the heap at rest
// grows back to its goal between collections, and the free memory goes
// back to the kernel slowly, so that calyx-node's RSS depends more on when
// it is read than on what it holds. At rest garbage comes mainly from the
// periodic resync (every 90 s by default) and the collector's passes.
// "At rest" only means no local API request: the datastore's events (a
// policy storm, a busy cluster's remote endpoints) still make garbage, so
// such a collection happens at most once per restReleaseEvery, whatever
// the garbage: six full collections of the live heap a minute at worst,
// besides the one on coming to rest (garbage at 4 MiB per 10 s would make
// the runtime collect every 20 s on its own with a 8 MiB headroom).
//
// That period is the tuner's own, so that at each look the heap holds
// less than restSlack beyond its live part, however fast calyx-node makes
// garbage. With 30 s, a host with 1,000 endpoints (350 KiB/s of garbage at
// rest, against 170 with none) reached its GOGC goal between releases, and
// its runtime kept the memory that collection freed (1.1 MB not returned
// at the window's end, none at 0 endpoints).
const (
	// gcTuneInterval is how often the tuner looks, and how long calyx-node
	// must have been at rest before GOGC is lowered.
	gcTuneInterval = 10 * time.Second
	busyGCPercent  = 100 // Go's default
	// At rest GOGC is set for restHeadroom of growth past the live heap,
	// between minRestGCPercent (a collection at every quarter of the live
	// heap allocated, however large it is) and maxRestGCPercent, in steps
	// of restGCStep so that a live heap moving a little does not change it.
	restHeadroom     = 8 << 20
	minRestGCPercent = 25
	maxRestGCPercent = 50
	restGCStep       = 5
	// restHeap is the live heap from which GOGC is lowered at rest; below
	// smallHeap busyGCPercent applies again (the gap keeps a heap near the
	// threshold from switching back and forth). A small heap's doubling is
	// a few MB. (At 32 MiB, a host with 1,000 endpoints, whose live heap
	// is 29 MiB, stayed at 100: 110 MB of RSS at rest.)
	restHeap  = 16 << 20
	smallHeap = 12 << 20
	// restSlack is how much the heap may hold beyond its live part at
	// rest before the tuner collects and returns it, at most once per
	// restReleaseEvery.
	restSlack        = 4 << 20
	restReleaseEvery = gcTuneInterval / 2 // every look
)

// gcTuner sets the process's GC percentage: see above.
type gcTuner struct {
	log *slog.Logger
	// set sets the GC percentage; release returns the heap's free memory
	// to the kernel (debug.SetGCPercent, debug.FreeOSMemory; replaced in
	// tests).
	set     func(percent int)
	release func()
	mu      sync.Mutex // guards the following fields
	cur     int        // the percentage set
	// busy says a request arrived since the tuner last looked; resting
	// that the percentage set is the one for rest.
	busy, resting bool
	// live is the live heap's size at the last look.
	live uint64
	// slackReleased is when the tuner last released memory for slack.
	slackReleased time.Time
}

func newGCTuner(log *slog.Logger) *gcTuner {
	return &gcTuner{log: log, set: func(p int) { debug.SetGCPercent(p) }, release: debug.FreeOSMemory, cur: busyGCPercent}
}

// wrap marks calyx-node busy while h serves a request that busy accepts
// (nil: every request), restoring the busy percentage at once if it was
// lowered. Health and status polls are not work: they would keep a host
// whose runtime polls CNI STATUS busy for good.
func (t *gcTuner) wrap(h http.Handler, busy func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if busy != nil && !busy(r) {
			h.ServeHTTP(w, r)
			return
		}
		t.request()
		defer t.request() // a request running across a look keeps it busy
		h.ServeHTTP(w, r)
	})
}

// cniWork says whether a local API request is CNI or IPAM work (ADD,
// READY, DEL, CHECK, GC), as opposed to a health or status poll.
func cniWork(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v1/cni/") || strings.HasPrefix(r.URL.Path, "/v1/ipam/")
}

func (t *gcTuner) request() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy = true
	if t.resting {
		t.resting = false
		t.setLocked(busyGCPercentFor(t.live))
	}
}

// setLocked sets the GC percentage p unless it is set already.
func (t *gcTuner) setLocked(p int) {
	if p != t.cur {
		t.log.Debug("GC percentage set", "percent", p, "liveHeapBytes", t.live)
		t.cur = p
		t.set(p)
	}
}

// tick looks once, at now: live is the live heap's size, slack what the
// heap holds beyond it. Coming to rest with a large heap, and at rest when
// slack reaches restSlack (at most once per restReleaseEvery), it collects
// and returns the heap's free memory to the kernel at once (one
// collection), rather than leaving it to the runtime's slow background
// return.
func (t *gcTuner) tick(now time.Time, live, slack uint64) {
	t.mu.Lock()
	rest, wasResting := !t.busy, t.resting
	t.busy, t.live = false, live
	// At rest from restHeap, and, between the thresholds, while already
	// resting: the headroom follows the live heap.
	t.resting = rest && (live >= restHeap || wasResting && live >= smallHeap)
	if t.resting {
		t.setLocked(restGCPercentFor(live))
	} else {
		t.setLocked(busyGCPercentFor(live))
	}
	release := t.resting && !wasResting
	if !release && rest && slack >= restSlack && now.Sub(t.slackReleased) >= restReleaseEvery {
		release, t.slackReleased = true, now
	}
	t.mu.Unlock()
	if release {
		t.release()
	}
}

// run looks every interval until ctx ends.
func (t *gcTuner) run(ctx context.Context, every time.Duration) {
	// The live heap as of the last collection; the heap's objects, live or
	// not yet collected; its free memory not returned to the kernel.
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}}
	tk := time.NewTicker(every)
	defer tk.Stop()
	var now time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now = <-tk.C:
		}
		rtmetrics.Read(sample)
		var v [3]uint64
		for i, s := range sample {
			if s.Value.Kind() == rtmetrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		live, objects, free := v[0], v[1], v[2]
		t.tick(now, live, max(objects, live)-live+free)
	}
}

// restGCPercentFor is the GC percentage at rest for a live heap of live
// bytes: about restHeadroom of growth, within the bounds.
func restGCPercentFor(live uint64) int {
	p := int(restHeadroom * 100 / max(live, 1))
	return min(max(p/restGCStep*restGCStep, minRestGCPercent), maxRestGCPercent)
}

// busyGCPercentFor is the GC percentage while calyx-node serves requests,
// for a live heap of live bytes: Go's default below restHeap, the rest
// percentage from it.
func busyGCPercentFor(live uint64) int {
	if live < restHeap {
		return busyGCPercent
	}
	return restGCPercentFor(live)
}
