package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/test/hostnode"
)

// netNS is a named network namespace the benchmark created.
type netNS struct {
	name    string
	ns      ns.NetNS
	closers []func() error // run by close, last first
}

// onClose registers fn to run when the namespace is closed.
func (n *netNS) onClose(fn func() error) { n.closers = append(n.closers, fn) }

// newNS creates the namespace bench-<pid>-<suffix> with its loopback up.
func newNS(suffix string) (*netNS, error) {
	name := fmt.Sprintf("bench-%d-%s", os.Getpid(), suffix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	n := &netNS{name: name}
	var err error
	if n.ns, err = ns.GetNS("/run/netns/" + name); err != nil {
		n.close()
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	if err := n.run(context.Background(), "", "ip", "link", "set", "lo", "up"); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// close deletes the namespace; errors are logged (cleanup).
func (n *netNS) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil {
			logf("closing in %s: %v", n.name, err)
		}
	}
	if n.ns != nil {
		_ = n.ns.Close()
	}
	if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
		logf("ip netns del %s: %v: %s", n.name, err, bytes.TrimSpace(out))
	}
}

// run runs a command in the namespace with stdin, from a thread that
// entered it (no `ip netns exec` in between).
func (n *netNS) run(ctx context.Context, stdin, name string, args ...string) error {
	_, err := n.timed(ctx, stdin, name, args...)
	return err
}

// timed runs a command like run and returns its wall time.
func (n *netNS) timed(ctx context.Context, stdin, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	start := time.Now()
	if err := hostnode.RunIn(n.ns, cmd); err != nil {
		return 0, fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.name, err, firstLines(out.String(), 5))
	}
	return time.Since(start), nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// peer is one reference tool chain, loading a ruleset and its changes.
type peer struct {
	name string // metric prefix and label
	who  string // for the report
	// full loads rs into an empty namespace; change applies one change.
	full   func(ctx context.Context, n *netNS, rs ruleset) error
	change func(ctx context.Context, n *netNS, ch change) error
}

// peers are the three reference tool chains: Felix's layout through
// iptables-nft-restore and through iptables-legacy-restore (each with
// `ipset restore` for the sets, as Felix does), and the nft rendering
// through `nft -f`.
func peers() []peer {
	ipt := func(tool string) (func(context.Context, *netNS, ruleset) error, func(context.Context, *netNS, change) error) {
		return func(ctx context.Context, n *netNS, rs ruleset) error {
				if err := n.run(ctx, rs.ipset, "ipset", "restore"); err != nil {
					return err
				}
				return n.run(ctx, rs.iptables, tool)
			}, func(ctx context.Context, n *netNS, ch change) error {
				if ch.ipset != "" {
					if err := n.run(ctx, ch.ipset, "ipset", "restore"); err != nil {
						return err
					}
				}
				if ch.iptables != "" {
					return n.run(ctx, ch.iptables, tool, "--noflush")
				}
				return nil
			}
	}
	nftFull := func(ctx context.Context, n *netNS, rs ruleset) error { return n.run(ctx, rs.nft, "nft", "-f", "-") }
	nftChange := func(ctx context.Context, n *netNS, ch change) error { return n.run(ctx, ch.nft, "nft", "-f", "-") }
	nftFull0, nftChange0 := ipt("iptables-nft-restore")
	legFull, legChange := ipt("iptables-legacy-restore")
	return []peer{
		{name: "iptables_nft", who: "ipset restore + iptables-nft-restore (Felix's layout)", full: nftFull0, change: nftChange0},
		{name: "iptables_legacy", who: "ipset restore + iptables-legacy-restore (Felix's layout)", full: legFull, change: legChange},
		{name: "nft", who: "nft -f (sets and verdict maps)", full: nftFull, change: nftChange},
	}
}

// peerVersions names the peers' versions for the environment line.
func peerVersions() map[string]string {
	v := map[string]string{}
	for _, c := range [][]string{{"iptables", "--version"}, {"ipset", "version"}, {"nft", "--version"}, {"iperf3", "--version"}} {
		out, err := exec.Command(c[0], c[1:]...).Output()
		if err != nil {
			v[c[0]] = "missing"
			continue
		}
		v[c[0]] = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	return v
}
