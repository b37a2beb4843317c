package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestOursSession programs the small state and every kind of change with
// Calyx's reconciler in a namespace it creates, and reads the table back.
func TestOursSession(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	ctx := context.Background()
	res, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	c := compute(res)
	pr := &prepared{scale: scale{"test", small}, res: res, state: shallowClone(c.State())}
	ch := newChanger(small, res, c)
	for range 2 * len(changeKinds) {
		x, err := ch.next()
		if err != nil {
			t.Fatal(err)
		}
		pr.changes = append(pr.changes, x)
	}
	got, err := b3(ctx, ours(), pr)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range changeKinds {
		if len(got.changes[k]) != 2 {
			t.Errorf("%s: %d timings, want 2", k, len(got.changes[k]))
		}
	}

	// The table after the changes, read back from a namespace of our own.
	n, err := newNS("test-ours")
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	full, apply, err := ours().session(ctx, n, pr)
	if err != nil {
		t.Fatal(err)
	}
	if err := full(); err != nil {
		t.Fatal(err)
	}
	for _, x := range pr.changes {
		if err := apply(x); err != nil {
			t.Fatalf("%s: %v", x.kind, err)
		}
	}
	dump := capture(t, n, "nft", "list", "table", "inet", "calyx")
	if !strings.Contains(dump, ifName(0)) || strings.Contains(dump, ifName(small.Endpoints)) {
		t.Errorf("table after the changes: want %s and not the deleted %s:\n%s", ifName(0), ifName(small.Endpoints), firstLines(dump, 40))
	}
	// The two added members, 10.127.0.0 and .1, merged into one interval.
	if !strings.Contains(dump, "10.127.0.0/31") {
		t.Errorf("table after the changes lacks the added members 10.127.0.0/31:\n%s", firstLines(dump, 40))
	}
}

// TestOursOnPath proves B4 measures Calyx's ruleset on the path: the flood
// crosses it while the client is in the big selector, and is refused once
// calc removes it.
func TestOursOnPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
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
	unload, err := loadOurs(ctx, p.host, s)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := p.udpRate(ctx, time.Second); err != nil || r <= 0 {
		t.Fatalf("client in the big set: rate %v, %v", r, err)
	}
	if err := unload(); err != nil {
		t.Fatal(err)
	}
	// The same resources without the client's endpoint.
	c := compute(res)
	c.Update("WorkloadEndpoint", "bench-remote-000001", nil)
	if _, ok := c.State().Sets[bigSetIDOf(t, s)]; !ok {
		t.Fatal("the big set went away with its first member")
	}
	unload, err = loadOurs(ctx, p.host, c.State())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unload() }()
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.udpRate(ctx2, time.Second); err == nil {
		t.Fatal("client out of the big set: the flood still crossed Calyx's ruleset")
	}
}
