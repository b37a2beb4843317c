package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/calyx-net/calyx/internal/bgp"
	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// The bench speaker: Calyx's BGP speaker (internal/bgp, the code
// calyx-node runs) driven directly, for the figures that start from "the
// speaker is handed its paths" (single route add/withdraw, 10,000
// routes). GoBGP opens its sockets on goroutines of its own, in the
// namespace of the process, so the speaker runs in a process of its own
// started inside h1: this benchmark's binary again, told so by
// speakerEnv. It listens on speakerAddr only (h1's calyx-node holds
// h1's underlay address), peers with h2's calyx-node over iBGP (a
// BGPPeer makes h2 peer with it) and reads commands, one a line:
//
//	single 1|0   originate singlePrefix, or stop
//	bulk N       originate the first N of the bulk prefixes (0: none)
//
// answering each with "ok" once SetPaths has returned, or "err: ...". It
// exits when its stdin closes.

// speakerEnv, set to "1", makes the binary the bench speaker.
const speakerEnv = "CALYX_BENCH_B7_SPEAKER"

// speakerCmd is one parsed command.
type speakerCmd struct {
	single *bool // set for "single"
	bulk   int   // for "bulk"; -1 otherwise
}

// parseSpeakerCmd parses one command line.
func parseSpeakerCmd(line string) (speakerCmd, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return speakerCmd{}, fmt.Errorf("command %q: want \"single 1|0\" or \"bulk N\"", line)
	}
	switch f[0] {
	case "single":
		on := f[1] == "1"
		if !on && f[1] != "0" {
			return speakerCmd{}, fmt.Errorf("command %q: single takes 1 or 0", line)
		}
		return speakerCmd{single: &on, bulk: -1}, nil
	case "bulk":
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > bulkMax {
			return speakerCmd{}, fmt.Errorf("command %q: bulk takes 0..%d", line, bulkMax)
		}
		return speakerCmd{bulk: n}, nil
	}
	return speakerCmd{}, fmt.Errorf("command %q: unknown", line)
}

// speakerPaths is what the speaker originates with single on or off and
// the first bulk bulk prefixes, all with next hop speakerAddr.
func speakerPaths(single bool, bulk int) []bgp.Path {
	out := make([]bgp.Path, 0, bulk+1)
	if single {
		out = append(out, bgp.Path{Prefix: singlePrefix, NextHop: speakerAddr})
	}
	for i := range bulk {
		out = append(out, bgp.Path{Prefix: bulkPrefix(i), NextHop: speakerAddr})
	}
	return out
}

// speakerMain is the bench speaker's process: it returns the exit code.
func speakerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := serveSpeaker(ctx, os.Stdin, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench speaker:", err)
		return 1
	}
	return 0
}

func serveSpeaker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	sp, err := bgp.New(bgp.Config{RouterID: speakerAddr, ASN: bgpASN, ListenAddrs: []netip.Addr{speakerAddr}}, log)
	if err != nil {
		return err
	}
	if err := sp.SetPeers(ctx, []bgp.Peer{{Name: "h2", Addr: underlay[1].Addr(), ASN: bgpASN}}); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			log.Warn("speaker stopped", "err", err)
		}
	}()
	select {
	case <-sp.Ready():
	case err := <-done:
		done <- err
		return fmt.Errorf("starting the speaker: %w", err)
	}
	fmt.Fprintln(out, "ready")
	single, bulk := false, 0
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, err := parseSpeakerCmd(sc.Text())
		if err == nil {
			if cmd.single != nil {
				single = *cmd.single
			} else {
				bulk = cmd.bulk
			}
			err = sp.SetPaths(ctx, speakerPaths(single, bulk))
		}
		if err != nil {
			fmt.Fprintln(out, "err:", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintln(out, "ok")
	}
	return sc.Err()
}

// speakerProc is the bench speaker seen from the benchmark.
type speakerProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *testnet.SyncBuffer
}

// startSpeaker starts the bench speaker in host and waits for "ready".
func startSpeaker(ctx context.Context, host *netNS) (*speakerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), speakerEnv+"=1")
	p := &speakerProc{cmd: cmd, stderr: &testnet.SyncBuffer{}}
	cmd.Stderr = p.stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = bufio.NewReader(stdout)
	if err := hostnode.StartIn(host.ns, cmd); err != nil {
		return nil, fmt.Errorf("starting the bench speaker in %s: %w", host.name, err)
	}
	line, err := p.reply(ctx, 30*time.Second)
	if err != nil || line != "ready" {
		p.stop()
		return nil, fmt.Errorf("the bench speaker did not start (%q, %w): %s", line, err, firstLines(p.stderr.String(), 5))
	}
	return p, nil
}

// send sends one command and waits for its answer.
func (p *speakerProc) send(ctx context.Context, cmd string) error {
	if _, err := io.WriteString(p.in, cmd+"\n"); err != nil {
		return fmt.Errorf("bench speaker %q: %w: %s", cmd, err, firstLines(p.stderr.String(), 5))
	}
	line, err := p.reply(ctx, time.Minute)
	if err != nil {
		return fmt.Errorf("bench speaker %q: %w: %s", cmd, err, firstLines(p.stderr.String(), 5))
	}
	if line != "ok" {
		return fmt.Errorf("bench speaker %q: %s", cmd, line)
	}
	return nil
}

// reply reads one line of the speaker's answer.
func (p *speakerProc) reply(ctx context.Context, limit time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := p.out.ReadString('\n')
		ch <- res{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(limit):
		return "", fmt.Errorf("no answer within %v", limit)
	}
}

// stop closes the speaker's stdin (it then stops) and kills it if it has
// not exited within 10 s.
func (p *speakerProc) stop() {
	_ = p.in.Close()
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
	}
}
