package main

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/test/hostnode"
)

var small = params{Seed: 1, Policies: 20, Endpoints: 10, PerEndpoint: 2, BigSet: 50, RoleSets: 3, RoleMembers: 5}

func TestGenerateDeterministic(t *testing.T) {
	a, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave different states")
	}
	other := small
	other.Seed = 2
	c, err := generate(other)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Sets[bigSetID], c.Sets[bigSetID]) {
		t.Error("another seed gave the same big set")
	}
}

// TestGenerateShape checks sizes and that every reference resolves.
func TestGenerateShape(t *testing.T) {
	s, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Endpoints); got != small.Endpoints {
		t.Errorf("%d endpoints, want %d", got, small.Endpoints)
	}
	// 20 ingress chains, 10 egress, 2 profile chains.
	if got := len(s.Chains); got != 32 {
		t.Errorf("%d chains, want 32", got)
	}
	if got := len(s.Sets[bigSetID].Prefixes); got != small.BigSet {
		t.Errorf("big set has %d members, want %d", got, small.BigSet)
	}
	checkRefs(t, s)
	for _, ep := range s.Endpoints {
		if len(ep.Ingress.Policies) != small.PerEndpoint || len(ep.Egress.Policies) != 1 {
			t.Errorf("endpoint %s: %d ingress and %d egress policies, want %d and 1",
				ep.Name, len(ep.Ingress.Policies), len(ep.Egress.Policies), small.PerEndpoint)
		}
		if len(ep.IfName) != 15 || !strings.HasPrefix(ep.IfName, "calyx") {
			t.Errorf("endpoint %s: interface %q is not calyx + 10 hex digits", ep.Name, ep.IfName)
		}
	}
}

func checkRefs(t *testing.T, s *calc.State) {
	t.Helper()
	for _, ep := range s.Endpoints {
		for _, tier := range []calc.Tier{ep.Ingress, ep.Egress} {
			for _, id := range append(append([]string(nil), tier.Policies...), tier.Profiles...) {
				if s.Chains[id] == nil {
					t.Errorf("endpoint %s refers to missing chain %s", ep.Name, id)
				}
			}
		}
	}
	for _, c := range s.Chains {
		for _, r := range c.Rules {
			for _, id := range append(append(append([]string(nil), r.Src.Sets...), r.Dst.Sets...), r.Dst.NotSets...) {
				if s.Sets[id] == nil {
					t.Errorf("chain %s rule %d refers to missing set %s", c.ID, r.Index, id)
				}
			}
		}
	}
}

func TestGenerateBadParams(t *testing.T) {
	p := small
	p.PerEndpoint = 3
	if _, err := generate(p); err == nil || !strings.Contains(err.Error(), "PerEndpoint") {
		t.Errorf("PerEndpoint not dividing Policies: err = %v, want one naming PerEndpoint", err)
	}
}

// TestChangesKeepSize runs two change cycles: names, deltas and sizes.
func TestChangesKeepSize(t *testing.T) {
	s, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	c := newChanger(small, s)
	for i := range 2 * len(changeKinds) {
		ch, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if want := changeKinds[i%len(changeKinds)]; ch.kind != want {
			t.Fatalf("change %d is %s, want %s", i, ch.kind, want)
		}
		if ch.delta.Empty() || ch.nft == "" || (ch.iptables == "" && ch.ipset == "") {
			t.Errorf("change %d (%s): empty delta or peer text: %+v", i, ch.kind, ch)
		}
		checkRefs(t, ch.state)
		// The added endpoint is there from add_endpoint up to del_endpoint.
		wantEPs := small.Endpoints + 1
		if ch.kind == delEndpoint {
			wantEPs = small.Endpoints
		}
		if got := len(ch.state.Endpoints); got != wantEPs {
			t.Errorf("change %d (%s): %d endpoints, want %d", i, ch.kind, got, wantEPs)
		}
	}
	if got := len(c.state.Sets[bigSetID].Prefixes); got != small.BigSet+2 {
		t.Errorf("big set after two cycles has %d members, want %d", got, small.BigSet+2)
	}
	if got := len(s.Sets[bigSetID].Prefixes); got != small.BigSet {
		t.Errorf("the changes modified the original state: big set has %d members", got)
	}
}

func TestRenderCounts(t *testing.T) {
	s, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := render(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(rs.iptables, "\n-A "); got != rs.rules {
		t.Errorf("rules = %d, but the text has %d -A lines", rs.rules, got)
	}
	members := 0
	for _, set := range s.Sets {
		members += len(set.Prefixes)
	}
	if got := strings.Count(rs.ipset, "\nadd "); got != members {
		t.Errorf("ipset text adds %d members, want %d", got, members)
	}
	for _, ep := range s.Endpoints {
		if !strings.Contains(rs.nft, "chain tw-"+ep.IfName+" {") || !strings.Contains(rs.iptables, ":calyx-fw-"+ep.IfName+" ") {
			t.Errorf("endpoint %s has no chain in the renderings", ep.Name)
		}
	}
}

func TestRenderRejectsUnsupported(t *testing.T) {
	s, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	id := chainID(calc.KindProfile, profileID, calc.Ingress)
	c := *s.Chains[id]
	c.Rules = []calc.Rule{{Action: calc.ActionLog}}
	s.Chains[id] = &c
	if _, err := render(s); err == nil || !strings.Contains(err.Error(), "Log") {
		t.Errorf("render of a Log rule: err = %v, want one naming the action", err)
	}
}

// TestPeersLoad loads the full rendering and every kind of change with
// each peer, in namespaces it creates: the peers accept what they are
// given, and the result holds what it should.
func TestPeersLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"ipset", "iptables-nft-restore", "iptables-legacy-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps)", tool)
		}
	}
	s, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := render(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			n, err := newNS("test-" + p.name)
			if err != nil {
				t.Fatal(err)
			}
			defer n.close()
			if err := p.full(ctx, n, rs); err != nil {
				t.Fatalf("full load: %v", err)
			}
			c := newChanger(small, s)
			for range 2 * len(changeKinds) {
				ch, err := c.next()
				if err != nil {
					t.Fatal(err)
				}
				if err := p.change(ctx, n, ch); err != nil {
					t.Fatalf("%s: %v", ch.kind, err)
				}
			}
			// The edited policy's new port, and no trace of the added and
			// deleted endpoint.
			added := ifName(small.Endpoints)
			var dump string
			if p.name == "nft" {
				dump = capture(t, n, "nft", "list", "table", nftFamily, ipTable)
			} else {
				dump = capture(t, n, strings.ReplaceAll(p.name, "_", "-")+"-save")
			}
			if strings.Contains(dump, added) {
				t.Errorf("the deleted endpoint's interface %s is still in the ruleset", added)
			}
			if !strings.Contains(dump, ifName(0)) {
				t.Errorf("endpoint 0's interface %s is not in the ruleset:\n%s", ifName(0), firstLines(dump, 20))
			}
		})
	}
}

func capture(t *testing.T, n *netNS, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out strings.Builder
	cmd.Stdout = &out
	if err := hostnode.RunIn(n.ns, cmd); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.String()
}
