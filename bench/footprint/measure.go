package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calyx-net/calyx/bench/report"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every architecture Go runs Linux on.
const clockTicks = 100

// procSample is one reading of a process's /proc files.
type procSample struct {
	at      time.Time
	ticks   uint64 // utime+stime, all threads
	rss     uint64 // VmRSS, bytes
	rssAnon uint64 // RssAnon: heap, stacks (bytes)
	rssFile uint64 // RssFile: mapped files, e.g. etcd's bbolt database
	threads int
}

// readProc reads pid's CPU time, memory and threads.
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	if s.ticks, err = parseStat(stat); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	if err := parseStatus(status, &s); err != nil {
		return s, err
	}
	return s, nil
}

// readPSS reads pid's proportional set size, walking its mappings
// (smaps_rollup): a cost to the reader, so read less often than readProc.
func readPSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	kv := kbFields(b)
	v, ok := kv["Pss"]
	if !ok {
		return 0, errors.New("smaps_rollup has no Pss")
	}
	return v, nil
}

// parseStat returns utime+stime from /proc/<pid>/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted from
// the last ')': state is field 3, utime 14, stime 15.
func parseStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc stat %q: no command name", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc stat %q: %d fields after the name, want at least 13", b, len(f))
	}
	var sum uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// parseStatus fills s's memory and thread count from /proc/<pid>/status.
func parseStatus(b []byte, s *procSample) error {
	kv := kbFields(b)
	for _, k := range []string{"VmRSS", "RssAnon", "RssFile", "Threads"} {
		if _, ok := kv[k]; !ok {
			return fmt.Errorf("parsing /proc status: no %s", k)
		}
	}
	s.rss, s.rssAnon, s.rssFile = kv["VmRSS"], kv["RssAnon"], kv["RssFile"]
	s.threads = int(kv["Threads"])
	return nil
}

// kbFields parses "Key:   123 kB" lines into bytes, and "Key: 123"
// lines into the number; other lines are skipped.
func kbFields(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 2 && f[1] == "kB" {
			v *= 1024
		}
		out[k] = v
	}
	return out
}

// cpuPct is the process's CPU between two samples, in % of one core.
func cpuPct(a, b procSample) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(b.ticks-a.ticks) / clockTicks / wall * 100
}

// sampler reads a process's /proc files every interval until stopped.
type sampler struct {
	stopc   chan struct{}
	done    chan struct{}
	samples []procSample
	err     error
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			p, err := readProc(pid)
			if err != nil {
				s.err = fmt.Errorf("sampling calyx-node: %w", err)
				return
			}
			s.samples = append(s.samples, p)
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling after one last sample and returns them all.
func (s *sampler) stop() ([]procSample, error) {
	close(s.stopc)
	<-s.done
	return s.samples, s.err
}

// window is what one measurement window saw.
type window struct {
	cpuPct           float64
	rss, pss         uint64 // medians of the samples
	rssMax           uint64
	rssAnon, rssFile uint64
	threads          int
	metrics          map[string]float64
	// allocRate is what calyx-node allocated during the window, bytes/s
	// (with one scrape of its metrics, which is a few hundred KB): the
	// garbage its periodic work makes at rest, which sets how far its
	// heap grows beyond what is live.
	allocRate float64
	// The external etcd server's, with -embedded=false: for information.
	etcdCPUPct float64
	etcdRSS    uint64 // median
}

// Go runtime metrics calyx-node exports.
const (
	heapInuse    = "go_memstats_heap_inuse_bytes"
	heapAlloc    = "go_memstats_heap_alloc_bytes"
	heapIdle     = "go_memstats_heap_idle_bytes"
	heapReleased = "go_memstats_heap_released_bytes"
	nextGC       = "go_memstats_next_gc_bytes"
	gogc         = "go_gc_gogc_percent"
	goroutines   = "go_goroutines"
	allocTotal   = "go_memstats_alloc_bytes_total"
)

// liveHeap is the Go heap that survived the last collection, from the
// heap goal that collection set: goal = live * (1 + GOGC/100).
func liveHeap(m map[string]float64) float64 { return m[nextGC] / (1 + m[gogc]/100) }

func (w window) record(rep *report.Report, prefix string) {
	rep.Add(prefix+"idle_cpu_pct", w.cpuPct)
	rep.Add(prefix+"rss_mb", mb(w.rss))
	rep.Add(prefix+"pss_mb", mb(w.pss))
	rep.Add(prefix+"rss_max_mb", mb(w.rssMax))
	rep.Add(prefix+"rss_anon_mb", mb(w.rssAnon))
	rep.Add(prefix+"rss_file_mb", mb(w.rssFile))
	rep.Add(prefix+"go_heap_inuse_mb", w.metrics[heapInuse]/1e6)
	rep.Add(prefix+"go_heap_unreleased_mb", (w.metrics[heapIdle]-w.metrics[heapReleased])/1e6)
	// free room in spans that hold objects: the heap's fragmentation,
	// which no collection returns
	rep.Add(prefix+"go_heap_unused_mb", (w.metrics[heapInuse]-w.metrics[heapAlloc])/1e6)
	rep.Add(prefix+"go_heap_live_mb", liveHeap(w.metrics)/1e6)
	rep.Add(prefix+"alloc_kib_per_s", w.allocRate/1024)
	rep.Add(prefix+"goroutines", w.metrics[goroutines])
	rep.Add(prefix+"threads", float64(w.threads))
	if w.etcdRSS != 0 {
		rep.Add(prefix+"etcd_idle_cpu_pct", w.etcdCPUPct)
		rep.Add(prefix+"etcd_rss_mb", mb(w.etcdRSS))
	}
}

// measure watches calyx-node for d: its CPU from the first to the last
// sample, the medians of its memory samples (every few seconds), then
// its Go metrics, scraped after the window so that the scrape's cost is
// not counted. With a profile directory it also saves calyx-node's CPU
// profile of the window (which costs calyx-node a little CPU) and its
// heap and goroutines after it, as <dir>/<name>-{cpu,heap,goroutine}.pprof.
func (w *world) measure(ctx context.Context, d time.Duration, profileDir, name string) (window, error) {
	var out window
	var cpuProf chan error
	if profileDir != "" {
		cpuProf = make(chan error, 1)
		go func() {
			cpuProf <- w.saveProfile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), filepath.Join(profileDir, name+"-cpu.pprof"))
		}()
	}
	if profileDir != "" {
		// the allocations since start, to compare with those after the
		// window (pprof -sample_index=alloc_space -base): what the window
		// allocated, by caller.
		if err := w.saveProfile(ctx, "/debug/pprof/allocs", filepath.Join(profileDir, name+"-allocs-start.pprof")); err != nil {
			return out, err
		}
	}
	before, err := w.scrape(ctx)
	if err != nil {
		return out, err
	}
	start := time.Now()
	every := min(d/10, 5*time.Second)
	var samples, etcd []procSample
	var psss []uint64
	deadline := time.Now().Add(d)
	for {
		p, err := readProc(w.pid)
		if err != nil {
			return out, fmt.Errorf("reading calyx-node's /proc: %w", err)
		}
		samples = append(samples, p)
		if w.etcdPID != 0 {
			e, err := readProc(w.etcdPID)
			if err != nil {
				return out, fmt.Errorf("reading etcd's /proc: %w", err)
			}
			etcd = append(etcd, e)
		}
		pss, err := readPSS(w.pid)
		if err != nil {
			return out, fmt.Errorf("reading calyx-node's PSS: %w", err)
		}
		psss = append(psss, pss)
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if err := sleep(ctx, min(every, left)); err != nil {
			return out, err
		}
	}
	out.cpuPct = cpuPct(samples[0], samples[len(samples)-1])
	if len(etcd) > 0 {
		out.etcdCPUPct = cpuPct(etcd[0], etcd[len(etcd)-1])
		rss := make([]uint64, len(etcd))
		for i, e := range etcd {
			rss[i] = e.rss
		}
		out.etcdRSS = median(rss)
	}
	pick := func(f func(procSample) uint64) uint64 {
		vs := make([]uint64, len(samples))
		for i, s := range samples {
			vs[i] = f(s)
		}
		return median(vs)
	}
	out.rss = pick(func(s procSample) uint64 { return s.rss })
	out.rssAnon = pick(func(s procSample) uint64 { return s.rssAnon })
	out.rssFile = pick(func(s procSample) uint64 { return s.rssFile })
	for _, s := range samples {
		out.rssMax = max(out.rssMax, s.rss)
	}
	out.pss = median(psss)
	out.threads = samples[len(samples)-1].threads
	if out.metrics, err = w.scrape(ctx); err != nil {
		return out, err
	}
	out.allocRate = (out.metrics[allocTotal] - before[allocTotal]) / time.Since(start).Seconds()
	if profileDir != "" {
		if err := <-cpuProf; err != nil {
			return out, err
		}
		// heap after a collection: what is live, not what the last
		// collection (often during a resync) saw.
		for _, p := range []string{"heap?gc=1", "goroutine"} {
			file := filepath.Join(profileDir, name+"-"+strings.TrimSuffix(p, "?gc=1")+".pprof")
			if err := w.saveProfile(ctx, "/debug/pprof/"+p, file); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func median(vs []uint64) uint64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

// get fetches path from calyx-node's metrics address.
func (w *world) get(ctx context.Context, path string) ([]byte, error) {
	conn, err := w.dialMetrics(ctx)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("getting %s from calyx-node: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("getting %s from calyx-node: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("getting %s from calyx-node: %s", path, resp.Status)
	}
	return b, nil
}

// saveProfile fetches a pprof profile from calyx-node into file.
func (w *world) saveProfile(ctx context.Context, path, file string) error {
	b, err := w.get(ctx, path)
	if err != nil {
		return fmt.Errorf("%w (does this calyx-node serve /debug/pprof? see -bin)", err)
	}
	return os.WriteFile(file, b, 0o644)
}

// scrape reads calyx-node's metrics without labels.
func (w *world) scrape(ctx context.Context) (map[string]float64, error) {
	b, err := w.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	m, err := parseMetrics(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	for _, k := range []string{heapInuse, heapAlloc, heapIdle, heapReleased, nextGC, gogc, goroutines, allocTotal} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("calyx-node's metrics have no %s", k)
		}
	}
	return m, nil
}

// parseMetrics reads the Prometheus text format's samples without labels.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			m[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading calyx-node's metrics: %w", err)
	}
	return m, nil
}
