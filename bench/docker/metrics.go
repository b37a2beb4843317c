package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// requestMetric is calyx-node's histogram of Docker plugin requests.
const requestMetric = "calyx_docker_request_seconds"

// series names one histogram of requestMetric.
type series struct{ method, result string }

// hist is one histogram: cumulative counts per upper bound (ascending,
// the last +Inf), its sum (seconds) and count.
type hist struct {
	le, cum    []float64
	sum, count float64
}

// histograms are requestMetric's histograms as scraped.
type histograms map[series]*hist

// ok is method's histogram of successful requests (empty if none).
func (hs histograms) ok(method string) hist {
	if h := hs[series{method, "ok"}]; h != nil {
		return *h
	}
	return hist{}
}

// sorted lists the series, by method then result.
func (hs histograms) sorted() []series {
	var out []series
	for s := range hs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b series) int { return cmp.Or(cmp.Compare(a.method, b.method), cmp.Compare(a.result, b.result)) })
	return out
}

// sub is hs less an earlier scrape: the requests answered in between.
func (hs histograms) sub(before histograms) histograms {
	out := histograms{}
	for s, h := range hs {
		d := &hist{le: h.le, cum: slices.Clone(h.cum), sum: h.sum, count: h.count}
		if b := before[s]; b != nil && slices.Equal(b.le, h.le) {
			for i := range d.cum {
				d.cum[i] -= b.cum[i]
			}
			d.sum -= b.sum
			d.count -= b.count
		}
		out[s] = d
	}
	return out
}

// quantile estimates the q-quantile of h's observations in seconds as
// Prometheus's histogram_quantile does: find the bucket holding rank
// q*count and interpolate linearly between its bounds (the lowest
// bucket's lower bound is 0; a rank in the +Inf bucket gives the highest
// finite bound). NaN when h is empty.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 || len(h.le) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lo, below := 0.0, 0.0
	for i, le := range h.le {
		if h.cum[i] >= rank {
			if math.IsInf(le, 1) {
				return lo
			}
			if h.cum[i] == below {
				return le
			}
			return lo + (le-lo)*(rank-below)/(h.cum[i]-below)
		}
		lo, below = le, h.cum[i]
	}
	return lo
}

// parseHistograms reads requestMetric's histograms from the Prometheus
// text format.
func parseHistograms(r io.Reader) (histograms, error) {
	hs := histograms{}
	get := func(labels map[string]string) *hist {
		s := series{labels["method"], labels["result"]}
		if hs[s] == nil {
			hs[s] = &hist{}
		}
		return hs[s]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, requestMetric+"_") {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		labels, err := parseLabels(labelText)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		switch strings.TrimPrefix(name, requestMetric+"_") {
		case "bucket":
			le, err := strconv.ParseFloat(labels["le"], 64) // "+Inf" parses
			if err != nil {
				return nil, fmt.Errorf("metrics line %q: le: %w", line, err)
			}
			delete(labels, "le")
			h := get(labels)
			h.le, h.cum = append(h.le, le), append(h.cum, v)
		case "sum":
			get(labels).sum = v
		case "count":
			get(labels).count = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for s, h := range hs {
		if !slices.IsSorted(h.le) || len(h.le) == 0 || !math.IsInf(h.le[len(h.le)-1], 1) {
			return nil, fmt.Errorf("histogram %s %v: buckets %v are not ascending up to +Inf", requestMetric, s, h.le)
		}
	}
	return hs, nil
}

// parseLabels parses `a="x",b="y"` (values quoted with Go's escapes, as
// the text format's are).
func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, fmt.Errorf("labels %q: want name=\"value\"", s)
		}
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			return nil, fmt.Errorf("labels %q: unterminated value", s)
		}
		v, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return nil, fmt.Errorf("labels %q: %w", s, err)
		}
		labels[name] = v
		s = strings.TrimPrefix(rest[end+1:], ",")
	}
	return labels, nil
}

// scrape reads calyx-node's request histograms. Its metrics listen
// inside the namespace, so the connection is dialled from a thread there.
func (w *world) scrape(ctx context.Context) (histograms, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := w.netns.Do(func(ns.NetNS) error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading calyx-node's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading calyx-node's metrics: %s", resp.Status)
	}
	hs, err := parseHistograms(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading calyx-node's metrics: %w", err)
	}
	return hs, nil
}
