package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"time"

	"github.com/calyx-net/calyx/bench/report"
)

// B7 (reference/performance.md): how fast a route reaches the peer's
// kernel, Calyx's BGP speaker (GoBGP, in calyx-node) against BIRD 2, in
// the same topology (two hosts in namespaces joined by a veth underlay,
// one iBGP session per pair, AS 64512), rounds interleaved. See
// b7calyx.go and b7bird.go for the two sides, b7report.go for the
// figures. The end of every measurement is the netlink route event in
// the receiving host's namespace (b7watch.go); its start is the moment
// the sending side is told of the route.

const (
	bgpASN        = 64512
	bulkRoutes    = 10000
	bulkMax       = 1 << 16 // bulkRange's addresses
	singleSamples = 100     // per round, for each single-route figure
	warmSamples   = 5
	sampleLimit   = 5 * time.Second
	bulkLimit     = 2 * time.Minute
	readyLimit    = 90 * time.Second
	sampleGap     = 10 * time.Millisecond // between single-route samples
	bulkSettle    = 300 * time.Millisecond
)

// The routes B7 watches for on the receivers, all inside watchedRange.
var (
	watchedRange = netip.MustParsePrefix("10.96.0.0/12")
	newRoutePool = netip.MustParsePrefix("10.99.0.0/16")  // new blocks (Calyx's pool) and BIRD's new kernel routes
	bulkRange    = netip.MustParsePrefix("10.100.0.0/16") // the bulk /32s
	singlePrefix = netip.MustParsePrefix("10.101.0.1/32") // the route toggled on and off
	speakerAddr  = netip.MustParseAddr("192.0.2.21")      // the bench speaker's, on h1
)

// bulkPrefix is the i-th bulk route, a /32 in bulkRange.
func bulkPrefix(i int) netip.Prefix { return netip.PrefixFrom(nthAddr(bulkRange.Addr(), i), 32) }

// nthAddr is the IPv4 address i after base.
func nthAddr(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], binary.BigEndian.Uint32(b[:])+uint32(i))
	return netip.AddrFrom4(out)
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// b7Side is one implementation's pair of hosts: how to tell the sender of
// a route, and the receiver's tracked routes.
type b7Side interface {
	name() string
	tracker() *tracker
	// newRoute originates a route the sender has never had and returns it.
	newRoute(ctx context.Context) (netip.Prefix, error)
	// single originates singlePrefix, or stops.
	single(ctx context.Context, on bool) error
	// bulk originates the first n bulk routes (bulkRoutes or 0).
	bulk(ctx context.Context, n int) error
	// diag describes the receiver's state, for an error.
	diag(ctx context.Context) string
}

// b7Sample is one side's measurements in one round.
type b7Sample struct {
	newRoute, origin []time.Duration // new route → receiver's kernel; the sender's part until newRoute returned
	add, withdraw    []time.Duration // singlePrefix on and off → receiver's kernel
	bulkAdd          time.Duration   // bulkRoutes on → all in the receiver's kernel
	bulkFirst        time.Duration   // bulkRoutes on → the first in the receiver's kernel
	bulkCall         time.Duration   // bulkRoutes on → the sender's call returned
	bulkWithdraw     time.Duration   // and off → all gone
}

func runB7(ctx context.Context, binDir, work string) error {
	logf("b7: building Calyx's hosts (two calyx-nodes, BGP mesh, the bench speaker)")
	c, err := newCalyxSide(ctx, binDir, work)
	if err != nil {
		return fmt.Errorf("b7, calyx: %w", err)
	}
	defer c.close()
	logf("b7: building BIRD's hosts (two birds, one iBGP session)")
	b, err := newBIRDSide(ctx, work)
	if err != nil {
		return fmt.Errorf("b7, bird: %w", err)
	}
	defer b.close()
	sides := []b7Side{c, b}
	for _, s := range sides {
		logf("b7: waiting for %s's sessions, then warming up", s.name())
		if err := ready(ctx, s); err != nil {
			return fmt.Errorf("b7, %s: %w%s", s.name(), err, diag(ctx, s))
		}
	}
	if err := report.WriteEnv(os.Stdout, "routing", b7Env(b.version)); err != nil {
		return err
	}
	rep := newB7Report()
	steps := b7Steps(sides)
	for r := range rounds {
		got := map[string]*b7Sample{}
		for _, s := range sides {
			got[s.name()] = &b7Sample{}
		}
		for i := range steps {
			st := steps[(i+r)%len(steps)]
			if err := st.run(ctx, st.side, got[st.side.name()]); err != nil {
				return fmt.Errorf("b7 round %d, %s %s: %w%s", r+1, st.side.name(), st.what, err, diag(ctx, st.side))
			}
		}
		for _, s := range sides {
			g := got[s.name()]
			logf("b7 round %d %-5s new route p50 %6.2f p99 %6.2f ms; add p50 %6.2f p99 %6.2f ms; withdraw p50 %6.2f p99 %6.2f ms; 10k %7.1f ms (first %6.1f), withdraw %7.1f ms",
				r+1, s.name(), pct(g.newRoute, 0.5), pct(g.newRoute, 0.99), pct(g.add, 0.5), pct(g.add, 0.99),
				pct(g.withdraw, 0.5), pct(g.withdraw, 0.99), report.Ms(g.bulkAdd), report.Ms(g.bulkFirst), report.Ms(g.bulkWithdraw))
		}
		recordB7(rep, got["calyx"], got["bird"])
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	for _, l := range b7Legend {
		fmt.Println(l)
	}
	return report.WriteJSON(os.Stdout, lines...)
}

// diag is s's diagnosis for an error, unless the run was interrupted.
func diag(ctx context.Context, s b7Side) string {
	if ctx.Err() != nil {
		return ""
	}
	return "\n" + s.diag(ctx)
}

func pct(ds []time.Duration, q float64) float64 { return report.Ms(report.Percentile(ds, q)) }

// b7Step is one measurement of one side in a round.
type b7Step struct {
	side b7Side
	what string
	run  func(context.Context, b7Side, *b7Sample) error
}

// b7Steps are a round's measurements: each kind for Calyx then BIRD; the
// rounds rotate the order.
func b7Steps(sides []b7Side) []b7Step {
	var out []b7Step
	for _, k := range []struct {
		what string
		run  func(context.Context, b7Side, *b7Sample) error
	}{{"new routes", measureNew}, {"single add/withdraw", measureToggle}, {"10k routes", measureBulk}} {
		for _, s := range sides {
			out = append(out, b7Step{side: s, what: k.what, run: k.run})
		}
	}
	return out
}

// ready waits until s carries routes (its sessions are up) and warms it
// up with a few samples of each kind, not recorded.
func ready(ctx context.Context, s b7Side) error {
	tr := s.tracker()
	t0 := time.Now()
	if err := s.single(ctx, true); err != nil {
		return err
	}
	if _, err := tr.waitPresent(ctx, singlePrefix, t0, readyLimit); err != nil {
		return err
	}
	t1 := time.Now()
	if err := s.single(ctx, false); err != nil {
		return err
	}
	if _, err := tr.waitGone(ctx, singlePrefix, t1, readyLimit); err != nil {
		return err
	}
	t2 := time.Now()
	p, err := s.newRoute(ctx)
	if err != nil {
		return err
	}
	if _, err := tr.waitPresent(ctx, p, t2, readyLimit); err != nil {
		return err
	}
	var warm b7Sample
	if err := measureNewN(ctx, s, &warm, warmSamples); err != nil {
		return err
	}
	return measureToggleN(ctx, s, &warm, warmSamples)
}

func measureNew(ctx context.Context, s b7Side, into *b7Sample) error {
	return measureNewN(ctx, s, into, singleSamples)
}

// measureNewN times n new routes, one after another: from just before
// the sender is told to the route's event on the receiver.
func measureNewN(ctx context.Context, s b7Side, into *b7Sample, n int) error {
	tr := s.tracker()
	for range n {
		t0 := time.Now()
		p, err := s.newRoute(ctx)
		if err != nil {
			return err
		}
		origin := time.Since(t0)
		at, err := tr.waitPresent(ctx, p, t0, sampleLimit)
		if err != nil {
			return err
		}
		into.newRoute = append(into.newRoute, at.Sub(t0))
		into.origin = append(into.origin, origin)
		if err := sleep(ctx, sampleGap); err != nil {
			return err
		}
	}
	return nil
}

func measureToggle(ctx context.Context, s b7Side, into *b7Sample) error {
	return measureToggleN(ctx, s, into, singleSamples)
}

// measureToggleN times n adds and withdrawals of singlePrefix.
func measureToggleN(ctx context.Context, s b7Side, into *b7Sample, n int) error {
	tr := s.tracker()
	for range n {
		for _, on := range []bool{true, false} {
			t0 := time.Now()
			if err := s.single(ctx, on); err != nil {
				return err
			}
			wait, list := tr.waitGone, &into.withdraw
			if on {
				wait, list = tr.waitPresent, &into.add
			}
			at, err := wait(ctx, singlePrefix, t0, sampleLimit)
			if err != nil {
				return err
			}
			*list = append(*list, at.Sub(t0))
			if err := sleep(ctx, sampleGap); err != nil {
				return err
			}
		}
	}
	return nil
}

// measureBulk times bulkRoutes routes until the last is in the
// receiver's kernel, then their withdrawal until the last is gone.
func measureBulk(ctx context.Context, s b7Side, into *b7Sample) error {
	tr := s.tracker()
	if n := tr.size(); n != 0 {
		return fmt.Errorf("%d bulk routes left from before", n)
	}
	t0 := time.Now()
	if err := s.bulk(ctx, bulkRoutes); err != nil {
		return err
	}
	into.bulkCall = time.Since(t0)
	at, err := tr.waitCount(ctx, bulkRoutes, bulkLimit)
	if err != nil {
		return err
	}
	into.bulkAdd, into.bulkFirst = at.Sub(t0), tr.first().Sub(t0)
	if err := sleep(ctx, bulkSettle); err != nil {
		return err
	}
	t1 := time.Now()
	if err := s.bulk(ctx, 0); err != nil {
		return err
	}
	if at, err = tr.waitCount(ctx, 0, bulkLimit); err != nil {
		return err
	}
	into.bulkWithdraw = at.Sub(t1)
	return sleep(ctx, bulkSettle)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// b7Env is B7's environment line.
func b7Env(birdVersion string) map[string]any {
	gobgp := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/osrg/gobgp/v4" {
				gobgp = d.Version
			}
		}
	}
	return map[string]any{
		"part": "b7", "rounds": rounds, "single_samples": singleSamples, "bulk_routes": bulkRoutes,
		"bird": birdVersion, "gobgp": gobgp, "session": "iBGP, AS 64512, one session per pair over a veth underlay",
		"detection":              "netlink route events in the receiver's namespace (no polling)",
		"calyx_graceful_restart": calyxGR.String(),
	}
}
