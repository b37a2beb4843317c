package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func routeUpdate(msg uint16, dst string, table, typ int) netlink.RouteUpdate {
	_, n, err := net.ParseCIDR(dst)
	if err != nil {
		panic(err)
	}
	return netlink.RouteUpdate{Type: msg, Route: netlink.Route{Dst: n, Table: table, Type: typ}}
}

func TestEventOf(t *testing.T) {
	at := time.Unix(100, 0)
	for _, tc := range []struct {
		name string
		u    netlink.RouteUpdate
		want routeEvent
		ok   bool
	}{
		{"new", routeUpdate(unix.RTM_NEWROUTE, "10.100.0.7/32", unix.RT_TABLE_MAIN, unix.RTN_UNICAST),
			routeEvent{add: true, dst: netip.MustParsePrefix("10.100.0.7/32"), at: at}, true},
		{"del", routeUpdate(unix.RTM_DELROUTE, "10.99.1.0/26", unix.RT_TABLE_MAIN, unix.RTN_UNICAST),
			routeEvent{dst: netip.MustParsePrefix("10.99.1.0/26"), at: at}, true},
		{"other table", routeUpdate(unix.RTM_NEWROUTE, "10.100.0.7/32", unix.RT_TABLE_LOCAL, unix.RTN_UNICAST), routeEvent{}, false},
		{"blackhole", routeUpdate(unix.RTM_NEWROUTE, "10.100.0.7/32", unix.RT_TABLE_MAIN, unix.RTN_BLACKHOLE), routeEvent{}, false},
		{"outside", routeUpdate(unix.RTM_NEWROUTE, "192.0.2.0/24", unix.RT_TABLE_MAIN, unix.RTN_UNICAST), routeEvent{}, false},
		{"wider than watched", routeUpdate(unix.RTM_NEWROUTE, "10.0.0.0/8", unix.RT_TABLE_MAIN, unix.RTN_UNICAST), routeEvent{}, false},
		{"default", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST}}, routeEvent{}, false},
	} {
		got, ok := eventOf(tc.u, watchedRange, at)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: eventOf = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTracker(t *testing.T) {
	ctx := context.Background()
	tr := newTracker(bulkRange)
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	single, bulk0, bulk1 := singlePrefix, bulkPrefix(0), bulkPrefix(1)

	tr.apply(routeEvent{add: true, dst: single, at: ms(1)})
	tr.apply(routeEvent{add: true, dst: single, at: ms(5)}) // a replace keeps the first time
	if at, err := tr.waitPresent(ctx, single, t0, time.Second); err != nil || !at.Equal(ms(1)) {
		t.Errorf("waitPresent = %v, %v; want +1ms", at, err)
	}
	// Present, but since before the asked start: not this sample's.
	if _, err := tr.waitPresent(ctx, single, ms(2), 20*time.Millisecond); err == nil {
		t.Error("waitPresent accepted a route that appeared before since")
	}
	tr.apply(routeEvent{dst: single, at: ms(7)})
	if at, err := tr.waitGone(ctx, single, ms(6), time.Second); err != nil || !at.Equal(ms(7)) {
		t.Errorf("waitGone = %v, %v; want +7ms", at, err)
	}
	tr.apply(routeEvent{dst: single, at: ms(8)}) // gone twice: ignored
	if at, _ := tr.waitGone(ctx, single, ms(6), time.Second); !at.Equal(ms(7)) {
		t.Errorf("a second removal moved the time to %v", at)
	}

	// The count covers the bulk range only; the wait sees a change made
	// while it waits.
	done := make(chan time.Time)
	go func() {
		at, err := tr.waitCount(ctx, 2, time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- at
	}()
	tr.apply(routeEvent{add: true, dst: bulk0, at: ms(10)})
	tr.apply(routeEvent{add: true, dst: single, at: ms(11)})
	tr.apply(routeEvent{add: true, dst: bulk1, at: ms(12)})
	if at := <-done; !at.Equal(ms(12)) {
		t.Errorf("waitCount(2) = %v, want +12ms", at)
	}
	if tr.size() != 2 || !tr.first().Equal(ms(10)) {
		t.Errorf("size %d, first %v; want 2, +10ms", tr.size(), tr.first())
	}
	tr.apply(routeEvent{dst: bulk0, at: ms(20)})
	tr.apply(routeEvent{dst: bulk1, at: ms(21)})
	if at, err := tr.waitCount(ctx, 0, time.Second); err != nil || !at.Equal(ms(21)) {
		t.Errorf("waitCount(0) = %v, %v; want +21ms", at, err)
	}

	lost := errors.New("ENOBUFS")
	tr.fail(lost)
	if _, err := tr.waitCount(ctx, 0, time.Second); !errors.Is(err, lost) {
		t.Errorf("after fail, wait = %v; want the failure", err)
	}
}

func TestParseSpeakerCmd(t *testing.T) {
	for _, tc := range []struct {
		in     string
		single string // "on", "off" or "" (not a single command)
		bulk   int
		err    bool
	}{
		{in: "single 1", single: "on", bulk: -1},
		{in: "single 0", single: "off", bulk: -1},
		{in: "bulk 10000", bulk: 10000},
		{in: "bulk 0", bulk: 0},
		{in: "  bulk   3 ", bulk: 3},
		{in: "single 2", err: true},
		{in: "bulk -1", err: true},
		{in: "bulk 70000", err: true},
		{in: "bulk x", err: true},
		{in: "bulk", err: true},
		{in: "jump 1", err: true},
		{in: "", err: true},
	} {
		got, err := parseSpeakerCmd(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		single := ""
		if got.single != nil {
			single = map[bool]string{true: "on", false: "off"}[*got.single]
		}
		if single != tc.single || got.bulk != tc.bulk {
			t.Errorf("%q: single %q, bulk %d; want %q, %d", tc.in, single, got.bulk, tc.single, tc.bulk)
		}
	}
}

func TestSpeakerPaths(t *testing.T) {
	ps := speakerPaths(true, 300)
	if len(ps) != 301 || ps[0].Prefix != singlePrefix {
		t.Fatalf("speakerPaths(true, 300): %d paths, first %v", len(ps), ps[0].Prefix)
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range ps {
		if seen[p.Prefix] || p.NextHop != speakerAddr {
			t.Errorf("path %v: duplicate or next hop %v", p.Prefix, p.NextHop)
		}
		seen[p.Prefix] = true
	}
	if got := ps[300].Prefix.String(); got != "10.100.1.43/32" {
		t.Errorf("the 300th bulk route is %s, want 10.100.1.43/32", got)
	}
	if got := speakerPaths(false, 0); len(got) != 0 {
		t.Errorf("speakerPaths(false, 0) = %v", got)
	}
	if last := bulkPrefix(bulkRoutes - 1); !bulkRange.Contains(last.Addr()) || !watchedRange.Contains(newRoutePool.Addr()) ||
		!watchedRange.Contains(singlePrefix.Addr()) {
		t.Errorf("the routes leave the watched ranges: last bulk %v", last)
	}
}

func TestBirdReplyEnd(t *testing.T) {
	for _, tc := range []struct {
		line         string
		last, failed bool
	}{
		{"0001 BIRD 2.0.12 ready.", true, false},
		{"0011 single: enabled", true, false},
		{"0010 single: already enabled", true, false},
		{"1000-BIRD 2.0.12", false, false},
		{" continued text", false, false},
		{"8003 No protocols match", true, true},
		{"9001 syntax error, unexpected CF_SYM_UNDEFINED", true, true},
		{"0000", false, false},
		{"abcd text", false, false},
	} {
		last, failed := birdReplyEnd(tc.line)
		if last != tc.last || failed != tc.failed {
			t.Errorf("%q: last %v failed %v; want %v %v", tc.line, last, failed, tc.last, tc.failed)
		}
	}
	if v := birdVersion("0001 BIRD 2.0.12 ready.\n1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.11"); v != "BIRD 2.0.12 ready." {
		t.Errorf("birdVersion = %q", v)
	}
}

func TestBirdConf(t *testing.T) {
	a1, a2 := underlay[0].Addr(), underlay[1].Addr()
	send := birdSenderConf(a1, a2, 3)
	for _, want := range []string{
		"router id 192.0.2.11;",
		"learn;",
		"import where net ~ [ 10.99.0.0/16+ ]; export none;",
		"protocol static single {\n\tdisabled;\n\tipv4;\n\troute 10.101.0.1/32 blackhole;\n}",
		"protocol static bulk {\n\tdisabled;\n\tipv4;\n\troute 10.100.0.0/32 blackhole;\n\troute 10.100.0.1/32 blackhole;\n\troute 10.100.0.2/32 blackhole;\n}",
		"local 192.0.2.11 as 64512;\n\tneighbor 192.0.2.12 as 64512;\n\tdirect;",
		"export all; next hop self;",
	} {
		if !strings.Contains(send, want) {
			t.Errorf("the sender's config lacks %q:\n%s", want, send)
		}
	}
	recv := birdReceiverConf(a2, a1)
	for _, want := range []string{"router id 192.0.2.12;", "ipv4 { import none; export all; };", "neighbor 192.0.2.11 as 64512;", "import all; export none;"} {
		if !strings.Contains(recv, want) {
			t.Errorf("the receiver's config lacks %q:\n%s", want, recv)
		}
	}
	if strings.Contains(recv, "learn") {
		t.Error("the receiver learns kernel routes")
	}
}

// TestRecordB7: per round, each figure is the percentile of the side's
// samples; the goals are on Calyx's p99s and the 10k ratio.
func TestRecordB7(t *testing.T) {
	ms := func(vs ...float64) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v * float64(time.Millisecond))
		}
		return out
	}
	rep := newB7Report()
	calyx := &b7Sample{newRoute: ms(3, 4, 30), origin: ms(2, 2, 2), add: ms(1, 1, 1), withdraw: ms(1, 2, 3),
		bulkAdd: 300 * time.Millisecond, bulkFirst: 20 * time.Millisecond, bulkCall: 50 * time.Millisecond, bulkWithdraw: 250 * time.Millisecond}
	bird := &b7Sample{newRoute: ms(1, 1, 1), origin: ms(0.1, 0.1, 0.1), add: ms(2, 2, 2), withdraw: ms(2, 2, 2),
		bulkAdd: 100 * time.Millisecond, bulkFirst: 5 * time.Millisecond, bulkCall: time.Millisecond, bulkWithdraw: 50 * time.Millisecond}
	recordB7(rep, calyx, bird)
	want := map[string]struct {
		ours, peer float64
		met        string // "yes", "no", "" (no goal)
	}{
		"bgp/new_route_p50_ms":        {4, 1, ""},
		"bgp/new_route_p99_ms":        {30, 1, "no"},
		"bgp/new_route_origin_p50_ms": {2, 0.1, ""},
		"bgp/route_add_p99_ms":        {1, 2, "yes"},
		"bgp/route_withdraw_p99_ms":   {3, 2, "yes"},
		"bgp/10k_add_ms":              {300, 100, "no"},
		"bgp/10k_first_ms":            {20, 5, ""},
		"bgp/10k_sender_call_ms":      {50, 1, ""},
		"bgp/10k_withdraw_ms":         {250, 50, ""},
	}
	lines := rep.Lines()
	if len(lines) != 11 {
		t.Errorf("%d lines, want 11", len(lines))
	}
	for _, l := range lines {
		w, ok := want[l.Metric]
		if !ok {
			continue
		}
		delete(want, l.Metric)
		met := ""
		if l.Met != nil {
			met = map[bool]string{true: "yes", false: "no"}[*l.Met]
		}
		if l.Ours == nil || l.Peer == nil || *l.Ours != w.ours || *l.Peer != w.peer || met != w.met {
			t.Errorf("%s: ours %v peer %v met %q; want %v %v %q", l.Metric, deref(l.Ours), deref(l.Peer), met, w.ours, w.peer, w.met)
		}
	}
	for m := range want {
		t.Errorf("no line for %s", m)
	}
}
