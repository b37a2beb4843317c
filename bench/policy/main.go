// Command policy is benchmarks B3 and B4 (reference/performance.md):
// programming Calyx's policy into the kernel beside the tools Calico's
// Felix and a hand-written nftables ruleset use, and the packet rate
// through a host that enforces it.
//
// The workload is generated (seeded) as datastore resources: P
// GlobalNetworkPolicies, E local workload endpoints each selected by k of
// them, a selector of the big client set (remote endpoints), small role
// selectors and a net list. internal/calc turns them into the host's
// desired state; the peers get the same state rendered by reference
// renderers (render.go): Felix's iptables layout with ipsets, and nft text
// with sets and verdict maps. Two scales:
//
//   - small: P=100, E=100, k=2, a 1,000-address selector;
//   - large: P=1,000, E=1,000, k=10, a 10,000-address selector;
//
// their size in rule-equivalents (the rules of Felix's layout) is printed
// in the environment line.
//
// B3, per scale and round, each implementation in a fresh network
// namespace of its own (in an order rotated every round):
//
//   - full programming: Calyx's nft.Reconciler applying the whole state to
//     an empty table, in-process over netlink; the peers `ipset restore` +
//     `iptables-nft-restore`, `ipset restore` + `iptables-legacy-restore`,
//     and `nft -f`;
//   - then 20 cycles of four incremental changes (a local endpoint added,
//     a remote endpoint added to the big selector, a policy's rule edited,
//     the endpoint deleted): Calyx applies calc's delta; the peers apply
//     the same change (`iptables-restore --noflush` with ipset commands,
//     `nft -f` with `add element`/`flush chain`). p50 and p99 per kind.
//
// B4: UDP 64-byte datagrams/s from a client namespace through a host
// namespace to a server namespace behind a local endpoint's veth, with
// Calyx's large ruleset in the host, with none, and with a conntrack-only
// table (established flows accepted, as in Calyx's ruleset), in an order
// rotated every round. The ratio to the conntrack-only figure is the cost
// of the policy itself.
//
// B5, once after the rounds (b5.go): datastore write → enforced, with a
// real calyx-node, workloads attached by the calyx CNI plugin and probe
// packets, beside a raw etcd watch of the same writes.
//
// Run as root with `make bench BENCH=policy`; stdout gets an environment
// line, a table and one JSON line per figure.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
)

const (
	rounds     = 3
	cycles     = 20 // change cycles per implementation, scale and round
	b4Duration = 5 * time.Second
)

// scale is one workload size.
type scale struct {
	name string
	p    params
}

var scales = []scale{
	{"small", params{Seed: 1, Policies: 100, Endpoints: 100, PerEndpoint: 2, BigSet: 1000, RoleSets: 10, RoleMembers: 20}},
	{"large", params{Seed: 1, Policies: 1000, Endpoints: 1000, PerEndpoint: 10, BigSet: 10000, RoleSets: 50, RoleMembers: 100}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/policy:", err)
		os.Exit(1)
	}
}

// prepared is one scale's inputs, computed once.
type prepared struct {
	scale
	res     []api.Resource
	state   *calc.State // calc's state after Replace
	rs      ruleset
	changes []change
	members int // set members in the state
}

func prepare(sc scale) (*prepared, error) {
	res, err := generate(sc.p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sc.name, err)
	}
	c := compute(res)
	pr := &prepared{scale: sc, res: res, state: shallowClone(c.State())}
	if pr.rs, err = render(pr.state); err != nil {
		return nil, fmt.Errorf("%s: rendering: %w", sc.name, err)
	}
	for _, s := range pr.state.Sets {
		pr.members += len(s.Prefixes)
	}
	ch := newChanger(sc.p, res, c)
	for range cycles * len(changeKinds) {
		x, err := ch.next()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		pr.changes = append(pr.changes, x)
	}
	return pr, nil
}

func run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces")
	}
	for _, tool := range []string{"ip", "ipset", "iptables-nft-restore", "iptables-legacy-restore", "nft", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps installs the peers): %w", tool, err)
		}
	}
	var preps []*prepared
	sizes := map[string]any{}
	for _, sc := range scales {
		logf("generating %s (P=%d, E=%d)", sc.name, sc.p.Policies, sc.p.Endpoints)
		pr, err := prepare(sc)
		if err != nil {
			return err
		}
		preps = append(preps, pr)
		sizes[sc.name] = map[string]any{"policies": sc.p.Policies, "endpoints": sc.p.Endpoints, "policies_per_endpoint": sc.p.PerEndpoint,
			"big_selector_addrs": sc.p.BigSet, "rule_equivalents": pr.rs.rules, "set_members": pr.members,
			"chains": len(pr.state.Chains), "sets": len(pr.state.Sets)}
	}
	if err := report.WriteEnv(os.Stdout, "policy", map[string]any{"rounds": rounds, "change_cycles": cycles,
		"scales": sizes, "peers": peerVersions(), "b4_seconds": b4Duration.Seconds()}); err != nil {
		return err
	}
	rep := newReport()
	impls := append([]impl{ours()}, peerImpls()...)
	large := preps[len(preps)-1]
	path, err := newPath(ctx, large.state.Endpoints[localName(0)].IfName, large.state.Endpoints[localName(0)].Addrs[0].String())
	if err != nil {
		return fmt.Errorf("b4: %w", err)
	}
	defer path.close()
	// failed records Calyx's failures: the peers' figures are still
	// measured and printed, and the run then exits with the failures.
	var failed []error
	for r := range rounds {
		for _, pr := range preps {
			if err := calcRound(rep, pr); err != nil {
				return err
			}
			var res = map[string]implResult{}
			for i := range impls {
				im := impls[(i+r)%len(impls)]
				got, err := b3(ctx, im, pr)
				if err != nil && im.name == oursName {
					err = fmt.Errorf("round %d, %s, %s: %w", r+1, pr.name, im.name, err)
					logf("%v", err)
					failed = append(failed, err)
					continue
				}
				if err != nil {
					return fmt.Errorf("round %d, %s, %s: %w", r+1, pr.name, im.name, err)
				}
				res[im.name] = got
				logf("round %d %-5s %-15s full %8.1f ms; p99 %s", r+1, pr.name, im.name, report.Ms(got.full), got.p99s())
			}
			record(rep, pr.name, res)
		}
		if err := b4Round(ctx, rep, path, large, r); err != nil {
			err = fmt.Errorf("round %d, b4: %w", r+1, err)
			logf("%v", err)
			failed = append(failed, err)
		}
	}
	recordFlat(rep)
	if err := b5Run(ctx, rep); err != nil {
		logf("%v", err)
		failed = append(failed, err)
	}
	lines := rep.Lines()
	if err := report.WriteTable(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Printf("calyx = %s; peers: %s\n", ours().who, peerList())
	if err := report.WriteJSON(os.Stdout, lines...); err != nil {
		return err
	}
	return errors.Join(failed...)
}

// calcRound times calc on the scale: a full Replace into a new
// calculator, then the prepared changes' events, each an Update and a
// TakeDelta.
func calcRound(rep *report.Report, pr *prepared) error {
	start := time.Now()
	c := compute(pr.res)
	rep.Add(pr.name+"/calc_replace_ms", report.Ms(time.Since(start)))
	if len(c.State().Endpoints) != pr.p.Endpoints {
		return fmt.Errorf("%s: calc computed %d endpoints, want %d", pr.name, len(c.State().Endpoints), pr.p.Endpoints)
	}
	c.TakeDelta()
	var ds []time.Duration
	for _, ch := range pr.changes {
		start := time.Now()
		c.Update(ch.event.kind, ch.event.name, ch.event.r)
		d := c.TakeDelta()
		ds = append(ds, time.Since(start))
		if d.Empty() {
			return fmt.Errorf("%s: calc reported no delta for %s %s", pr.name, ch.event.kind, ch.event.name)
		}
	}
	rep.Add(pr.name+"/calc_update_p99_ms", report.Ms(report.Percentile(ds, 0.99)))
	return nil
}

// impl is one implementation under test in B3.
type impl struct {
	name, who string
	// session starts one run in the namespace n: full programs the whole
	// state, apply one change.
	session func(ctx context.Context, n *netNS, pr *prepared) (full func() error, apply func(change) error, err error)
}

func peerImpls() []impl {
	var out []impl
	for _, p := range peers() {
		out = append(out, impl{name: p.name, who: p.who, session: func(ctx context.Context, n *netNS, pr *prepared) (func() error, func(change) error, error) {
			return func() error { return p.full(ctx, n, pr.rs) }, func(ch change) error { return p.change(ctx, n, ch) }, nil
		}})
	}
	return out
}

func peerList() string {
	s := ""
	for i, p := range peers() {
		if i > 0 {
			s += "; "
		}
		s += p.name + " = " + p.who
	}
	return s
}

// implResult is one implementation's B3 run on one scale.
type implResult struct {
	full    time.Duration
	changes map[string][]time.Duration // by kind
}

func (r implResult) p99s() string {
	s := ""
	for _, k := range changeKinds {
		s += fmt.Sprintf(" %s %.2f", k, report.Ms(report.Percentile(r.changes[k], 0.99)))
	}
	return s
}

// b3 runs one implementation on one scale in a fresh namespace.
func b3(ctx context.Context, im impl, pr *prepared) (implResult, error) {
	res := implResult{changes: map[string][]time.Duration{}}
	n, err := newNS("b3-" + im.name)
	if err != nil {
		return res, err
	}
	defer n.close()
	full, apply, err := im.session(ctx, n, pr)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := full(); err != nil {
		return res, fmt.Errorf("full programming: %w", err)
	}
	res.full = time.Since(start)
	for i, ch := range pr.changes {
		start := time.Now()
		if err := apply(ch); err != nil {
			return res, fmt.Errorf("change %d (%s): %w", i, ch.kind, err)
		}
		res.changes[ch.kind] = append(res.changes[ch.kind], time.Since(start))
	}
	return res, nil
}

// b4Round measures the packet rate with Calyx's ruleset, with none, and
// with a table holding only "ct state established,related accept" (the
// conntrack floor every stateful ruleset pays, Calyx's included), in an
// order rotated every round.
func b4Round(ctx context.Context, rep *report.Report, p *path, pr *prepared, r int) error {
	withRules := func() (float64, error) {
		unload, err := loadOurs(ctx, p.host, pr.state)
		if err != nil {
			return 0, err
		}
		rate, err := p.udpRate(ctx, b4Duration)
		if uerr := unload(); err == nil {
			err = uerr
		}
		return rate, err
	}
	none := func() (float64, error) { return p.udpRate(ctx, b4Duration) }
	ctOnly := func() (float64, error) {
		if err := p.host.run(ctx, conntrackOnly, "nft", "-f", "-"); err != nil {
			return 0, err
		}
		rate, err := p.udpRate(ctx, b4Duration)
		if derr := p.host.run(ctx, "", "nft", "delete", "table", "inet", conntrackTable); err == nil {
			err = derr
		}
		return rate, err
	}
	var ours, base, ct float64
	var oursErr error
	runs := []func() error{
		func() error { ours, oursErr = withRules(); return nil },
		func() (err error) { base, err = none(); return err },
		func() (err error) { ct, err = ctOnly(); return err },
	}
	for i := range runs {
		if err := runs[(i+r)%len(runs)](); err != nil {
			return err
		}
	}
	if oursErr != nil {
		// Calyx's side is not recorded, nor the peers', so that the
		// rounds' ratios pair up.
		logf("round %d b4: %.0f pps without a ruleset, %.0f with conntrack only; with Calyx's: %v", r+1, base, ct, oursErr)
		return oursErr
	}
	logf("round %d b4: %.0f pps with Calyx's ruleset, %.0f without, %.0f with conntrack only", r+1, ours, base, ct)
	rep.Add(b4Metric, ours)
	rep.AddPeer(b4Metric, base)
	rep.Add(b4CtMetric, ours)
	rep.AddPeer(b4CtMetric, ct)
	return nil
}

// The conntrack floor of B4: a table that only accepts established flows.
const (
	conntrackTable = "ctonly"
	conntrackOnly  = "table inet " + conntrackTable + " {\n\tchain forward {\n" +
		"\t\ttype filter hook forward priority filter; policy accept;\n" +
		"\t\tct state established,related accept\n\t}\n}\n"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
