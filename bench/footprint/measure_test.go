package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/ipam"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis: fields are counted
	// from the last ')'. utime 1234, stime 56.
	stat := "4242 (calyx (node) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 56 0 0 20 0 9 0 100 800000000 12000 18446744073709551615"
	got, err := parseStat([]byte(stat))
	if err != nil || got != 1290 {
		t.Errorf("parseStat = %d, %v; want 1290", got, err)
	}
	if _, err := parseStat([]byte("4242 (short) S 1 2")); err == nil {
		t.Error("parseStat of a short line: no error")
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tcalyx-node\nVmHWM:\t  90000 kB\nVmRSS:\t   80000 kB\nRssAnon:\t   50000 kB\nRssFile:\t   30000 kB\nRssShmem:\t       0 kB\nThreads:\t12\n"
	var s procSample
	if err := parseStatus([]byte(status), &s); err != nil {
		t.Fatal(err)
	}
	if s.rss != 80000*1024 || s.rssAnon != 50000*1024 || s.rssFile != 30000*1024 || s.threads != 12 {
		t.Errorf("parseStatus = %+v", s)
	}
	if err := parseStatus([]byte("Name:\tx\nVmRSS:\t1 kB\n"), &s); err == nil {
		t.Error("parseStatus without RssAnon: no error")
	}
}

func TestCPUPct(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := procSample{at: t0, ticks: 500}
	b := procSample{at: t0.Add(90 * time.Second), ticks: 590}
	if got := cpuPct(a, b); got != 1 {
		t.Errorf("90 ticks in 90 s = %v%%, want 1%%", got)
	}
	if got := cpuPct(a, a); got != 0 {
		t.Errorf("no time: %v, want 0", got)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 83
go_memstats_heap_inuse_bytes 2.2184e+07
calyx_cni_requests_total{op="add",result="ok"} 50
process_resident_memory_bytes 7.6e+07
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"go_goroutines": 83, heapInuse: 22184000, "process_resident_memory_bytes": 76e6}
	if len(m) != len(want) {
		t.Errorf("parseMetrics = %v, want %v (labelled samples left out)", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestCountRoutes(t *testing.T) {
	out := `10.64.0.0/26 dev calyx0123456789 proto 80 scope link
10.64.0.2 dev calyxabcdefabcd proto 80 scope link
10.128.0.0 via 192.0.2.100 dev uplink0 proto 80
10.128.0.1 via 192.0.2.101 dev uplink0 proto 80
blackhole 10.64.0.0/26 proto 80
`
	if r, l := countRoutes(out); r != 2 || l != 2 {
		t.Errorf("countRoutes = %d remote, %d local; want 2, 2", r, l)
	}
}

// TestClusterResources checks that the generated resources decode and
// validate as calyxctl would take them, and their counts.
func TestClusterResources(t *testing.T) {
	s := settings{remoteNodes: 3, policies: 40}
	doc, err := api.EncodeYAML(clusterResources(s))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := api.Decode(doc)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range rs {
		r.SetDefaults()
		if err := r.Validate(); err != nil {
			t.Errorf("%s %s: %v", r.GetKind(), r.GetObjectMeta().Name, err)
		}
		count[r.GetKind()]++
	}
	want := map[string]int{api.KindIPPool: 2, api.KindNode: 3, api.KindGlobalNetworkPolicy: 40}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s, want %d", count[k], k, n)
		}
	}
}

func TestNetConf(t *testing.T) {
	b, err := netConf("/run/x.sock", 13, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		IPAM struct {
			Pools []string `json:"ipv4_pools"`
		} `json:"ipam"`
		Args map[string]struct {
			NetworkInfo struct {
				Labels struct {
					Labels []struct{ Key, Value string } `json:"labels"`
				} `json:"labels"`
			} `json:"network_info"`
		} `json:"args"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	labels := c.Args["org.apache.mesos"].NetworkInfo.Labels.Labels
	if len(c.IPAM.Pools) != 1 || c.IPAM.Pools[0] != localPool || len(labels) != 2 ||
		labels[0].Value != "a13" || labels[1].Value != "r13" {
		t.Errorf("netConf = %s", b)
	}
}

func TestRemoteAffinities(t *testing.T) {
	puts := remoteAffinities(settings{remoteRoutes: 1030, remoteNodes: 7})
	if len(puts) != 1030 {
		t.Fatalf("%d affinities, want 1030", len(puts))
	}
	seen := map[string]bool{}
	for _, p := range puts {
		if seen[p.Key] {
			t.Errorf("duplicate affinity %s", p.Key)
		}
		seen[p.Key] = true
		if string(p.Value) != `{"state":"confirmed"}` {
			t.Errorf("%s = %s", p.Key, p.Value)
		}
	}
	// Block 1029 is 1029*64 addresses in: 10.129.1.64/26, node 1029 mod 7.
	want := ipam.AffinityKey(remoteNode(0), netip.MustParsePrefix("10.129.1.64/26"))
	if got := puts[1029].Key; got != want {
		t.Errorf("last affinity %s, want %s", got, want)
	}
}
