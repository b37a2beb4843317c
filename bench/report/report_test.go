package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{7}, 7},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("%s: Median(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("%s: Median reordered its input: %v", tc.name, in)
				break
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // descending: Percentile sorts
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", []time.Duration{time.Second}, 0.99, time.Second},
		{"p50 of 100", hundred, 0.50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 0.99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 1, 100 * time.Millisecond},
		{"p0 of 100", hundred, 0, time.Millisecond},
		{"p50 of 3", []time.Duration{3, 1, 2}, 0.5, 2},
	} {
		if got := Percentile(tc.in, tc.q); got != tc.want {
			t.Errorf("%s: Percentile(q=%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
	if got := Ms(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("Ms(1.5ms) = %v, want 1.5", got)
	}
}

func TestLines(t *testing.T) {
	r := New("demo", []Spec{
		{Metric: "add_p50_ms", Goal: "ratio <= 1.0", Met: func(_, ratio float64) bool { return ratio <= 1.0 }, PeerIs: "the peer"},
		{Metric: "solo_ms", Goal: "<= 1 ms", Met: func(ours, _ float64) bool { return ours <= 1 }, PeerIs: "unused"},
		{Metric: "ratio_goal_no_peer", Goal: "ratio >= 1", Met: func(_, ratio float64) bool { return ratio >= 1 }},
		{Metric: "never_added", Goal: "-"},
	})
	// Added out of spec order: the lines follow the specs.
	r.Add("solo_ms", 0.9)
	r.Add("solo_ms", 1.2)
	r.Add("solo_ms", 0.5)
	r.Add("ratio_goal_no_peer", 2)
	for _, p := range [][2]float64{{1, 2}, {3, 2}, {2, 4}} {
		r.Add("add_p50_ms", p[0])
		r.AddPeer("add_p50_ms", p[1])
	}
	r.AddSelector("sel_ns", `a == "1" && b`, 10, 4)
	r.AddSelector("sel_ns", "all()", 3, 0) // a zero peer gives no ratio

	var buf bytes.Buffer
	if err := WriteJSON(&buf, r.Lines()...); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		// ratios 0.5, 1.5, 0.5: median 0.5.
		`{"bench":"demo","metric":"add_p50_ms","ours":2,"peer":2,"ratio":0.5,"goal":"ratio <= 1.0","met":true,` +
			`"ours_min":1,"ours_max":3,"ratio_min":0.5,"ratio_max":1.5,"ours_rounds":[1,3,2],"peer_rounds":[2,2,4],` +
			`"ratio_rounds":[0.5,1.5,0.5],"peer_is":"the peer"}`,
		// No peer: peer and ratio are null, peer_is is left out.
		`{"bench":"demo","metric":"solo_ms","ours":0.9,"peer":null,"ratio":null,"goal":"<= 1 ms","met":true,` +
			`"ours_min":0.5,"ours_max":1.2,"ours_rounds":[0.9,1.2,0.5]}`,
		// A goal on the ratio is not met without a peer.
		`{"bench":"demo","metric":"ratio_goal_no_peer","ours":2,"peer":null,"ratio":null,"goal":"ratio >= 1","met":false,` +
			`"ours_min":2,"ours_max":2,"ours_rounds":[2]}`,
		// No spec: goal "-", after the specs, in the order added.
		`{"bench":"demo","metric":"sel_ns","selector":"a == \"1\" && b","ours":10,"peer":4,"ratio":2.5,"goal":"-",` +
			`"ours_min":10,"ours_max":10,"ratio_min":2.5,"ratio_max":2.5,"ours_rounds":[10],"peer_rounds":[4],"ratio_rounds":[2.5]}`,
		`{"bench":"demo","metric":"sel_ns","selector":"all()","ours":3,"peer":0,"ratio":null,"goal":"-",` +
			`"ours_min":3,"ours_max":3,"ours_rounds":[3],"peer_rounds":[0]}`,
	}, "\n") + "\n"
	if got := buf.String(); got != want {
		t.Errorf("JSON lines:\ngot:\n%s\nwant:\n%s", got, want)
	}

	if got := r.Figure("solo_ms"); got == nil || len(got.Ours) != 3 {
		t.Errorf("Figure(solo_ms) = %+v, want its three rounds", got)
	}
	if got := r.Figure("never_added"); got != nil {
		t.Errorf("Figure(never_added) = %+v, want nil", got)
	}
}

func TestRound3(t *testing.T) {
	for in, want := range map[float64]float64{1.2344: 1.234, 1.2345001: 1.235, 2.0 / 3: 0.667, -1.2346: -1.235, 0: 0} {
		if got := Round3(in); got != want {
			t.Errorf("Round3(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := New("demo", nil)
	r.Add("solo_ms", 1)
	var buf bytes.Buffer
	if err := WriteTable(&buf, r.Lines()); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	if strings.Contains(got, "selector") || !strings.Contains(got, "solo_ms") || !strings.Contains(got, "1.000..1.000") {
		t.Errorf("table without selectors:\n%s", got)
	}
}

func TestEnv(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteEnv(&buf, "demo", map[string]any{"rounds": 3}); err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(buf.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bench", "env", "kernel", "nproc", "go", "rounds"} {
		if _, ok := env[k]; !ok {
			t.Errorf("environment line %s has no %q", buf.String(), k)
		}
	}
}
