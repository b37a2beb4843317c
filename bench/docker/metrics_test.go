package main

import (
	"math"
	"strings"
	"testing"
)

const scrapeBefore = `# HELP calyx_docker_request_seconds Time calyx-node spent answering Docker plugin requests.
# TYPE calyx_docker_request_seconds histogram
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.001"} 0
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.002"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.004"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="+Inf"} 1
calyx_docker_request_seconds_sum{method="NetworkDriver.Join",result="ok"} 0.0015
calyx_docker_request_seconds_count{method="NetworkDriver.Join",result="ok"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="error",le="0.001"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="error",le="0.002"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="error",le="0.004"} 1
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="error",le="+Inf"} 1
calyx_docker_request_seconds_sum{method="NetworkDriver.Join",result="error"} 0.0005
calyx_docker_request_seconds_count{method="NetworkDriver.Join",result="error"} 1
calyx_cni_request_seconds_bucket{op="add",le="0.001"} 7
`

// After: 100 more ok Joins: 50 in (1, 2] ms, 49 in (2, 4] ms, 1 above.
const scrapeAfter = `calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.001"} 0
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.002"} 51
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="0.004"} 100
calyx_docker_request_seconds_bucket{method="NetworkDriver.Join",result="ok",le="+Inf"} 101
calyx_docker_request_seconds_sum{method="NetworkDriver.Join",result="ok"} 0.3015
calyx_docker_request_seconds_count{method="NetworkDriver.Join",result="ok"} 101
calyx_docker_request_seconds_bucket{method="IpamDriver.RequestAddress",result="ok",le="0.001"} 2
calyx_docker_request_seconds_bucket{method="IpamDriver.RequestAddress",result="ok",le="0.002"} 2
calyx_docker_request_seconds_bucket{method="IpamDriver.RequestAddress",result="ok",le="0.004"} 2
calyx_docker_request_seconds_bucket{method="IpamDriver.RequestAddress",result="ok",le="+Inf"} 2
calyx_docker_request_seconds_sum{method="IpamDriver.RequestAddress",result="ok"} 0.001
calyx_docker_request_seconds_count{method="IpamDriver.RequestAddress",result="ok"} 2
`

func TestHistogramDelta(t *testing.T) {
	before, err := parseHistograms(strings.NewReader(scrapeBefore))
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 {
		t.Fatalf("parsed %d series, want 2 (ok and error Joins): %v", len(before), before)
	}
	after, err := parseHistograms(strings.NewReader(scrapeAfter))
	if err != nil {
		t.Fatal(err)
	}
	d := after.sub(before)
	join := d.ok("NetworkDriver.Join")
	if join.count != 100 || math.Abs(join.sum-0.3) > 1e-9 {
		t.Errorf("Join delta: count %v, sum %v; want 100 and 0.3", join.count, join.sum)
	}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.25, 0.0015}, // rank 25 of the 50 in (1, 2] ms: half-way
		{0.50, 0.002},  // rank 50: the top of (1, 2] ms
		{0.99, 0.004},  // rank 99: the top of (2, 4] ms
		{1, 0.004},     // in +Inf: the highest finite bound
	} {
		if got := join.quantile(tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := d.ok("IpamDriver.RequestAddress"); got.count != 2 || got.quantile(0.5) != 0.0005 {
		t.Errorf("RequestAddress, new since before: count %v, p50 %v; want 2 and 0.0005", got.count, got.quantile(0.5))
	}
	if got := d.ok("NetworkDriver.Leave"); !math.IsNaN(got.quantile(0.5)) {
		t.Errorf("p50 of a method never called = %v, want NaN", got.quantile(0.5))
	}
	var names []string
	for _, s := range d.sorted() {
		names = append(names, s.method+"/"+s.result)
	}
	if got, want := strings.Join(names, " "), "IpamDriver.RequestAddress/ok NetworkDriver.Join/ok"; got != want {
		t.Errorf("series %q, want %q (the error Joins are not in the later scrape)", got, want)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := parseLabels(`method="a,b",result="q\"uote",le="+Inf"`)
	if err != nil {
		t.Fatal(err)
	}
	if got["method"] != "a,b" || got["result"] != `q"uote` || got["le"] != "+Inf" || len(got) != 3 {
		t.Errorf("parseLabels = %v", got)
	}
	for _, bad := range []string{`method`, `method=a`, `method="a`} {
		if _, err := parseLabels(bad); err == nil {
			t.Errorf("parseLabels(%q) succeeded", bad)
		}
	}
}

func TestParseHistogramsBadBuckets(t *testing.T) {
	in := `calyx_docker_request_seconds_bucket{method="m",result="ok",le="0.002"} 1
calyx_docker_request_seconds_bucket{method="m",result="ok",le="0.001"} 1
`
	if _, err := parseHistograms(strings.NewReader(in)); err == nil {
		t.Error("buckets out of order and without +Inf were accepted")
	}
}
