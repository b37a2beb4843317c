package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/calc"
)

func TestParseIperfUDP(t *testing.T) {
	got, err := parseIperfUDP([]byte(`{"end":{"sum":{"seconds":2,"packets":1000,"lost_packets":200}}}`))
	if err != nil || got != 400 {
		t.Errorf("parseIperfUDP = %v, %v; want 400", got, err)
	}
	for _, bad := range []string{`{"error":"unable to connect"}`, `{"end":{}}`, `not json`} {
		if _, err := parseIperfUDP([]byte(bad)); err == nil {
			t.Errorf("parseIperfUDP(%s): no error", bad)
		}
	}
}

// TestPathPolicy builds B4's path and proves the flood crosses the
// endpoint's ingress policy: it flows with no ruleset and with the nft
// reference ruleset of a state whose big set holds the client, and not
// when the client is taken out of the set.
func TestPathPolicy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"iperf3", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps)", tool)
		}
	}
	ctx := context.Background()
	res, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	s := compute(res).State()
	ep := s.Endpoints[localName(0)]
	p, err := newPath(ctx, ep.IfName, ep.Addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if r, err := p.udpRate(ctx, time.Second); err != nil || r <= 0 {
		t.Fatalf("no ruleset: rate %v, %v", r, err)
	}
	// B4's conntrack floor loads and lets the flood through.
	if err := p.host.run(ctx, conntrackOnly, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if r, err := p.udpRate(ctx, time.Second); err != nil || r <= 0 {
		t.Fatalf("conntrack only: rate %v, %v", r, err)
	}
	if err := p.host.run(ctx, "", "nft", "delete", "table", "inet", conntrackTable); err != nil {
		t.Fatal(err)
	}
	rs, err := render(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.host.run(ctx, rs.nft, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if r, err := p.udpRate(ctx, time.Second); err != nil || r <= 0 {
		t.Fatalf("client in the big set: rate %v, %v", r, err)
	}
	if err := p.host.run(ctx, "", "nft", "delete", "element", nftFamily, ipTable, bigSetIDOf(t, s), "{ "+clientAddr+" }"); err != nil {
		t.Fatal(err)
	}
	// iperf3's control connection (TCP 5201) is now refused by policy.
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = p.udpRate(ctx2, time.Second)
	if err == nil {
		t.Fatal("client out of the big set: the flood still crossed the endpoint's ingress policy")
	}
	if !strings.Contains(err.Error(), "iperf3") {
		t.Errorf("unexpected error: %v", err)
	}
}

// bigSetIDOf is the ID of the set calc made for the big selector.
func bigSetIDOf(t *testing.T, s *calc.State) string {
	t.Helper()
	for id, set := range s.Sets {
		if strings.Contains(set.Describe, bigSel) {
			return id
		}
	}
	t.Fatalf("no set for %s", bigSel)
	return ""
}
