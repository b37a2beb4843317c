package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/test/hostnode"
)

// netNS is a named network namespace the benchmark created.
type netNS struct {
	name string
	ns   ns.NetNS
}

// path is the namespace's file, for CNI_NETNS.
func (n *netNS) path() string { return "/run/netns/" + n.name }

// nsName is the name of the benchmark's namespace with suffix:
// bench-<pid>-<suffix>, so that concurrent runs never share one.
func nsName(suffix string) string { return fmt.Sprintf("bench-%d-%s", os.Getpid(), suffix) }

// newNS creates the namespace nsName(suffix) with its loopback up.
func newNS(ctx context.Context, suffix string) (*netNS, error) {
	name := nsName(suffix)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	n := &netNS{name: name}
	var err error
	if n.ns, err = ns.GetNS(n.path()); err != nil {
		n.close()
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	if err := n.run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// close deletes the namespace; errors are logged (cleanup). Whatever
// runs in it must have been stopped: a process keeps its namespace alive.
func (n *netNS) close() {
	if n.ns != nil {
		_ = n.ns.Close()
	}
	if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
		logf("ip netns del %s: %v: %s", n.name, err, bytes.TrimSpace(out))
	}
}

// run runs a command in the namespace, from a thread that entered it (no
// `ip netns exec` in between).
func (n *netNS) run(ctx context.Context, name string, args ...string) error {
	_, err := n.output(ctx, name, args...)
	return err
}

// output runs a command like run and returns its stdout.
func (n *netNS) output(ctx context.Context, name string, args ...string) (string, error) {
	return n.input(ctx, "", name, args...)
}

// input runs a command like output, with stdin.
func (n *netNS) input(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := hostnode.RunIn(n.ns, cmd); err != nil {
		return out.String(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.name,
			err, firstLines(errb.String()+out.String(), 5))
	}
	return out.String(), nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// command runs a command from the benchmark's own process; it must name
// the namespace it changes (`ip -n`, `ip netns exec`).
func command(ctx context.Context, name string, args ...string) error {
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, firstLines(string(out), 5))
	}
	return nil
}
