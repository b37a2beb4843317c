package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/calyx-net/calyx/test/hostnode"
)

// path is B4's routed path: a client namespace (a workload on another
// host, sending from clientAddr, a member of the big set) → an uplink
// veth → the host namespace → the veth of local endpoint 0 (its host side
// named as the endpoint's interface, so the endpoint's ingress policy
// applies) → a server namespace with endpoint 0's address. Both legs are
// Calico-shaped: a /32 on the container side and a default route via
// 169.254.1.1, which the host holds on its loopback and so answers ARP
// for on every veth; a /32 route per container on the host side.
type path struct {
	client, host, server *netNS
	serverAddr           string
}

const uplink = "up0" // the host's veth towards the client (not calyx*)

func newPath(ctx context.Context, epIf, serverAddr string) (_ *path, err error) {
	p := &path{serverAddr: serverAddr}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.client, err = newNS("b4-client"); err != nil {
		return nil, err
	}
	if p.host, err = newNS("b4-host"); err != nil {
		return nil, err
	}
	if p.server, err = newNS("b4-server"); err != nil {
		return nil, err
	}
	for _, s := range [][]string{{"sysctl", "-qw", "net.ipv4.ip_forward=1"}, {"ip", "addr", "add", "169.254.1.1/32", "dev", "lo"}} {
		if err := p.host.run(ctx, "", s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	for _, leg := range []struct {
		ctr    *netNS
		hostIf string
		addr   string
	}{{p.client, uplink, clientAddr}, {p.server, epIf, serverAddr}} {
		steps := [][]string{
			{"ip", "link", "add", leg.hostIf, "type", "veth", "peer", "name", "eth0", "netns", leg.ctr.name},
			{"ip", "link", "set", leg.hostIf, "up"},
			{"ip", "route", "add", leg.addr + "/32", "dev", leg.hostIf},
		}
		for _, s := range steps {
			if err := p.host.run(ctx, "", s[0], s[1:]...); err != nil {
				return nil, err
			}
		}
		for _, s := range [][]string{
			{"ip", "addr", "add", leg.addr + "/32", "dev", "eth0"},
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
			{"ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
		} {
			if err := leg.ctr.run(ctx, "", s[0], s[1:]...); err != nil {
				return nil, err
			}
		}
	}
	// A first packet: ARP and routes work.
	if err := p.client.run(ctx, "", "ping", "-c", "1", "-W", "2", serverAddr); err != nil {
		return nil, fmt.Errorf("the path does not carry a ping: %w", err)
	}
	return p, nil
}

func (p *path) close() {
	for _, n := range []*netNS{p.client, p.host, p.server} {
		if n != nil {
			n.close()
		}
	}
}

// udpRate runs one iperf3 UDP flood of 64-byte datagrams from client to
// server for d and returns the datagrams per second the server received.
func (p *path) udpRate(ctx context.Context, d time.Duration) (float64, error) {
	srv := exec.CommandContext(ctx, "iperf3", "-s", "-1", "-B", p.serverAddr)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := hostnode.StartIn(p.server.ns, srv); err != nil {
		return 0, fmt.Errorf("starting iperf3 -s: %w", err)
	}
	stop := func() { _ = srv.Process.Kill(); _ = srv.Wait() }
	if err := p.waitListening(ctx, 5*time.Second); err != nil {
		stop()
		return 0, fmt.Errorf("%w; server: %s", err, firstLines(srvOut.String(), 5))
	}
	args := []string{"-c", p.serverAddr, "-u", "-b", "0", "-l", "64", "-t", strconv.Itoa(int(d.Seconds())), "-J"}
	cmd := exec.CommandContext(ctx, "iperf3", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := hostnode.RunIn(p.client.ns, cmd)
	stop() // srvOut is complete once the server has exited
	if err != nil {
		return 0, fmt.Errorf("iperf3 -c %s: %w: %s; server: %s", p.serverAddr, err, firstLines(out.String(), 5), firstLines(srvOut.String(), 5))
	}
	return parseIperfUDP(out.Bytes())
}

// waitListening waits until iperf3's server listens on its TCP port
// (polling ss: a probe connection would use up the one test `-s -1`
// serves).
func (p *path) waitListening(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cmd := exec.CommandContext(ctx, "ss", "-Hltn", "src", p.serverAddr+":"+strconv.Itoa(benchPort))
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := hostnode.RunIn(p.server.ns, cmd); err != nil {
			return fmt.Errorf("ss in %s: %w", p.server.name, err)
		}
		if bytes.Contains(out.Bytes(), []byte("LISTEN")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iperf3 -s did not listen on %s:%d within %v", p.serverAddr, benchPort, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// parseIperfUDP returns the received datagrams per second from an iperf3
// UDP client's JSON: datagrams sent minus those the server reported lost,
// over the run's seconds.
func parseIperfUDP(b []byte) (float64, error) {
	var r struct {
		End struct {
			Sum struct {
				Seconds     float64 `json:"seconds"`
				Packets     float64 `json:"packets"`
				LostPackets float64 `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("parsing iperf3's JSON: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	s := r.End.Sum
	if s.Seconds <= 0 || s.Packets <= 0 {
		return 0, fmt.Errorf("iperf3's JSON has no UDP summary (end.sum seconds %v, packets %v)", s.Seconds, s.Packets)
	}
	return (s.Packets - s.LostPackets) / s.Seconds, nil
}
