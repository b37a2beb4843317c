package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/calyx-net/calyx/bench/report"
	"github.com/calyx-net/calyx/test/hostnode"
)

const iperfPort = 5201

// sample is one implementation's figures in one round.
type sample struct {
	tcp1, tcp4 float64 // Gbit/s received, one and four TCP streams
	pps        float64 // 64-byte UDP datagrams received per second
	rttMs      float64 // median ping round trip
}

// measure runs every test over p, in a fixed order.
func measure(ctx context.Context, p pair) (sample, error) {
	var s sample
	var err error
	if s.tcp1, err = p.tcp(ctx, 1); err != nil {
		return s, err
	}
	if s.tcp4, err = p.tcp(ctx, 4); err != nil {
		return s, err
	}
	if s.pps, err = p.udp(ctx); err != nil {
		return s, err
	}
	if s.rttMs, err = p.ping(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// tcp runs one iperf3 TCP test with streams parallel streams and returns
// the Gbit/s the server received.
func (p pair) tcp(ctx context.Context, streams int) (float64, error) {
	out, err := p.iperf(ctx, "-P", strconv.Itoa(streams))
	if err != nil {
		return 0, err
	}
	bps, err := parseIperfTCP(out)
	return bps / 1e9, err
}

// udp runs one iperf3 flood of 64-byte datagrams, as fast as the client
// sends, and returns the datagrams per second the server received.
func (p pair) udp(ctx context.Context) (float64, error) {
	out, err := p.iperf(ctx, "-u", "-b", "0", "-l", "64")
	if err != nil {
		return 0, err
	}
	return parseIperfUDP(out)
}

// iperf runs `iperf3 -s -1` on the server side, then one client test
// with extra arguments, and returns the client's JSON.
func (p pair) iperf(ctx context.Context, extra ...string) ([]byte, error) {
	srv := exec.CommandContext(ctx, "iperf3", "-s", "-1", "-B", p.srvAddr, "-p", strconv.Itoa(iperfPort))
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := hostnode.StartIn(p.srv.ns, srv); err != nil {
		return nil, fmt.Errorf("starting iperf3 -s in %s: %w", p.srv.name, err)
	}
	stop := func() { _ = srv.Process.Kill(); _ = srv.Wait() }
	if err := p.waitListening(ctx, 5*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("%w; server: %s", err, firstLines(srvOut.String(), 5))
	}
	args := append([]string{"-c", p.srvAddr, "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(int(testTime.Seconds())), "-J"}, extra...)
	cmd := exec.CommandContext(ctx, "iperf3", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := hostnode.RunIn(p.client.ns, cmd)
	stop() // srvOut is complete once the server has exited
	if err != nil {
		return nil, fmt.Errorf("iperf3 %s from %s: %w: %s; server: %s", strings.Join(args, " "), p.client.name, err,
			firstLines(out.String(), 5), firstLines(srvOut.String(), 5))
	}
	return out.Bytes(), nil
}

// waitListening waits until iperf3's server listens (polling ss: a probe
// connection would use up the one test `-s -1` serves).
func (p pair) waitListening(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := p.srv.output(ctx, "ss", "-Hltn", "src", p.srvAddr+":"+strconv.Itoa(iperfPort))
		if err != nil {
			return err
		}
		if strings.Contains(out, "LISTEN") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iperf3 -s did not listen on %s:%d within %v", p.srvAddr, iperfPort, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends pingCount echo requests, pingInterval apart, and returns the
// median round trip in ms.
func (p pair) ping(ctx context.Context) (float64, error) {
	out, err := p.client.output(ctx, "ping", "-n", "-c", strconv.Itoa(pingCount), "-i", pingInterval, p.srvAddr)
	if err != nil {
		return 0, err
	}
	rtts, err := parsePing(out)
	if err != nil {
		return 0, err
	}
	if len(rtts) < pingCount*9/10 {
		return 0, fmt.Errorf("ping %s from %s: %d replies of %d", p.srvAddr, p.client.name, len(rtts), pingCount)
	}
	return report.Median(rtts), nil
}

var pingTime = regexp.MustCompile(`\btime=([0-9.]+) ms\b`)

// parsePing returns the round trips, in ms, of ping's reply lines.
func parsePing(out string) ([]float64, error) {
	var rtts []float64
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, fmt.Errorf("parsing ping's time=%s: %w", m[1], err)
		}
		rtts = append(rtts, v)
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("ping printed no replies: %s", firstLines(out, 3))
	}
	return rtts, nil
}

// iperfResult is the part of iperf3's client JSON the benchmark reads.
type iperfResult struct {
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum struct {
			Seconds     float64 `json:"seconds"`
			Packets     float64 `json:"packets"`
			LostPackets float64 `json:"lost_packets"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

func parseIperf(b []byte) (iperfResult, error) {
	var r iperfResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("parsing iperf3's JSON: %w", err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("iperf3: %s", r.Error)
	}
	return r, nil
}

// parseIperfTCP returns the bits per second the server received, from an
// iperf3 TCP client's JSON (the sum over the streams).
func parseIperfTCP(b []byte) (float64, error) {
	r, err := parseIperf(b)
	if err != nil {
		return 0, err
	}
	s := r.End.SumReceived
	if s.Seconds <= 0 || s.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3's JSON has no TCP summary (end.sum_received)")
	}
	return s.BitsPerSecond, nil
}

// parseIperfUDP returns the received datagrams per second from an iperf3
// UDP client's JSON: datagrams sent minus those the server reported lost,
// over the run's seconds.
func parseIperfUDP(b []byte) (float64, error) {
	r, err := parseIperf(b)
	if err != nil {
		return 0, err
	}
	s := r.End.Sum
	if s.Seconds <= 0 || s.Packets <= 0 {
		return 0, fmt.Errorf("iperf3's JSON has no UDP summary (end.sum seconds %v, packets %v)", s.Seconds, s.Packets)
	}
	return (s.Packets - s.LostPackets) / s.Seconds, nil
}
