package main

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/test/hostnode"
)

var small = params{Seed: 1, Policies: 20, Endpoints: 10, PerEndpoint: 2, BigSet: 50, RoleSets: 3, RoleMembers: 5}

// smallState generates small and computes its state.
func smallState(t *testing.T) ([]api.Resource, *calc.Calc) {
	t.Helper()
	rs, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	return rs, compute(rs)
}

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
		t.Error("the same seed gave different resources")
	}
	other := small
	other.Seed = 2
	c, err := generate(other)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a, c) {
		t.Error("another seed gave the same resources")
	}
}

// TestGenerateValid checks that every generated resource passes the
// API's own validation, as calyxctl would require.
func TestGenerateValid(t *testing.T) {
	rs, err := generate(small)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r = r.DeepCopyResource()
		r.SetDefaults()
		if err := r.Validate(); err != nil {
			t.Errorf("%s %s: %v", r.GetKind(), r.GetObjectMeta().Name, err)
		}
	}
}

// TestGenerateShape checks the state calc computes from the resources:
// sizes, tiers and that every reference resolves.
func TestGenerateShape(t *testing.T) {
	_, c := smallState(t)
	s := c.State()
	if got := len(s.Endpoints); got != small.Endpoints {
		t.Errorf("%d endpoints, want %d", got, small.Endpoints)
	}
	// 20 ingress chains, 10 egress, 2 profile chains.
	if got := len(s.Chains); got != 32 {
		t.Errorf("%d chains, want 32", got)
	}
	var big *calc.Set
	for _, set := range s.Sets {
		if strings.Contains(set.Describe, bigSel) {
			big = set
		}
	}
	if big == nil || len(big.Prefixes) != small.BigSet {
		t.Errorf("big set %+v, want one of %d members", big, small.BigSet)
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
			for _, id := range slices.Concat(r.Src.Sets, r.Dst.Sets, r.Src.NotSets(), r.Dst.NotSets()) {
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

// TestChanges runs two change cycles through calc: kinds, deltas, sizes
// and the peers' renderings of each.
func TestChanges(t *testing.T) {
	rs, c := smallState(t)
	ch := newChanger(small, rs, c)
	for i := range 2 * len(changeKinds) {
		x, err := ch.next()
		if err != nil {
			t.Fatal(err)
		}
		if want := changeKinds[i%len(changeKinds)]; x.kind != want {
			t.Fatalf("change %d is %s, want %s", i, x.kind, want)
		}
		if x.nft == "" || (x.iptables == "" && x.ipset == "") {
			t.Errorf("change %d (%s): empty peer text: %+v", i, x.kind, x)
		}
		checkRefs(t, x.state)
		// The added endpoint is there from add_endpoint up to del_endpoint.
		wantEPs := small.Endpoints + 1
		if x.kind == delEndpoint {
			wantEPs = small.Endpoints
		}
		if got := len(x.state.Endpoints); got != wantEPs {
			t.Errorf("change %d (%s): %d endpoints, want %d", i, x.kind, got, wantEPs)
		}
		switch x.kind {
		case addMember:
			if len(x.delta.Sets) != 1 || len(x.delta.Chains)+len(x.delta.Endpoints) != 0 || strings.Count(x.ipset, "add ") != 1 {
				t.Errorf("add_member: delta %+v, ipset %q; want one set and one ipset add", x.delta, x.ipset)
			}
		case editPolicy:
			if len(x.delta.Chains) != 1 || !strings.Contains(x.nft, "flush chain") {
				t.Errorf("edit_policy: delta %+v, nft %q; want one chain, flushed", x.delta, x.nft)
			}
		case delEndpoint:
			if !strings.Contains(x.iptables, "-X calyx-tw-"+ifName(small.Endpoints)) || !strings.Contains(x.nft, "delete element") {
				t.Errorf("del_endpoint: iptables %q, nft %q; want the chains deleted", x.iptables, x.nft)
			}
		}
	}
}

func TestRenderCounts(t *testing.T) {
	_, c := smallState(t)
	s := c.State()
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
	_, cc := smallState(t)
	s := shallowClone(cc.State())
	id := calc.ChainID(calc.KindProfile, profileID, calc.Ingress)
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
	res, _ := smallState(t)
	ctx := context.Background()
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			n, err := newNS("test-" + p.name)
			if err != nil {
				t.Fatal(err)
			}
			defer n.close()
			cc := compute(res)
			rs, err := render(cc.State())
			if err != nil {
				t.Fatal(err)
			}
			if err := p.full(ctx, n, rs); err != nil {
				t.Fatalf("full load: %v", err)
			}
			c := newChanger(small, res, cc)
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
