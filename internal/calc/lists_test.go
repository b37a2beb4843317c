package calc

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
)

// size returns the number of distinct lists held.
func (x *stringLists) size() int {
	n := 0
	for _, b := range x.byHash {
		n += len(b)
	}
	return n
}

func TestStringLists(t *testing.T) {
	x := newStringLists()
	a := x.acquire([]string{"p1", "p2"})
	b := x.acquire([]string{"p1", "p2"})
	if &a[0] != &b[0] || x.size() != 1 {
		t.Fatalf("equal lists: two copies (%d held)", x.size())
	}
	c := x.acquire([]string{"p1"})
	if x.size() != 2 || !slices.Equal(c, []string{"p1"}) {
		t.Fatalf("a distinct list: %v, %d held", c, x.size())
	}
	if e := x.acquire(nil); e != nil || x.size() != 2 {
		t.Fatal("an empty list is held")
	}
	x.release(a)
	if x.size() != 2 {
		t.Fatal("a list with a user left was dropped")
	}
	x.release(b)
	x.release(c)
	x.release([]string{"never", "acquired"})
	if x.size() != 0 {
		t.Fatalf("%d lists held after their last users", x.size())
	}
}

// checkListCounts checks that calc's shared lists are exactly those its
// users hold, each counted once per holder: the local endpoints' matches
// and the workload endpoints' tiers.
func checkListCounts(t *testing.T, c *Calc) {
	t.Helper()
	holders := map[string]int{}
	add := func(l []string) {
		if len(l) > 0 {
			holders[strings.Join(l, "\x00")]++
		}
	}
	for _, m := range []map[string]*local{c.locs.weps, c.locs.heps} {
		for _, l := range m {
			add(l.matched)
		}
	}
	for _, ep := range c.state.Endpoints {
		for _, t := range ep.tiers() {
			add(t.Policies)
			add(t.Profiles)
		}
	}
	held := map[string]int{}
	for _, b := range c.lists.byHash {
		for _, s := range b {
			held[strings.Join(s.list, "\x00")] += s.refs
		}
	}
	if !maps.Equal(held, holders) {
		t.Fatalf("shared lists counted %v, held by %v", held, holders)
	}
}

// Endpoints with the same labels share their match and tier lists, and
// the lists go with their last endpoint.
func TestEndpointsShareLists(t *testing.T) {
	c := New("h1")
	c.Update(api.KindGlobalNetworkPolicy, "p1", valid(t, gnp("p1", ord(1), `app == "web"`, nil, rules(allow()), rules(allow()))))
	c.Update(api.KindGlobalNetworkPolicy, "p2", valid(t, gnp("p2", ord(2), `has(app)`, nil, rules(allow()), nil)))
	for i, app := range []string{"web", "web", "db"} {
		name := "h1-" + string(rune('a'+i))
		c.Update(api.KindWorkloadEndpoint, name, valid(t, wep(name, "h1", "calyx000000000"+string(rune('1'+i)), lbl("app", app), []string{"prof"}, "10.65.0."+string(rune('1'+i))+"/32")))
	}
	c.TakeDelta()
	a, b, db := c.state.Endpoints["h1-a"], c.state.Endpoints["h1-b"], c.state.Endpoints["h1-c"]
	if a == nil || b == nil || db == nil {
		t.Fatal("endpoints missing")
	}
	if &a.Ingress.Policies[0] != &b.Ingress.Policies[0] || &a.Egress.Policies[0] != &b.Egress.Policies[0] ||
		&a.Ingress.Profiles[0] != &b.Ingress.Profiles[0] || &c.locs.weps["h1-a"].matched[0] != &c.locs.weps["h1-b"].matched[0] {
		t.Error("two endpoints with the same labels hold two copies of their lists")
	}
	if len(db.Ingress.Policies) != 1 || &db.Ingress.Profiles[0] != &a.Ingress.Profiles[0] {
		t.Errorf("the db endpoint: ingress %v; its profiles should be shared", db.Ingress)
	}
	checkListCounts(t, c)
	// A policy change replaces the shared lists: the slices held before
	// keep what they held.
	tier, matched := a.Ingress.Policies, c.locs.weps["h1-a"].matched
	c.Update(api.KindGlobalNetworkPolicy, "p2", nil)
	c.TakeDelta()
	if !slices.Equal(tier, []string{ChainID(KindPolicy, "p1", Ingress), ChainID(KindPolicy, "p2", Ingress)}) {
		t.Errorf("a shared tier changed in place: %v", tier)
	}
	if !slices.Equal(matched, []string{"p1", "p2"}) || !slices.Equal(c.locs.weps["h1-a"].matched, []string{"p1"}) {
		t.Errorf("matches: the old list is %v (want p1 p2), the new %v (want p1)", matched, c.locs.weps["h1-a"].matched)
	}
	checkListCounts(t, c)
	for _, n := range []string{"h1-a", "h1-b", "h1-c"} {
		c.Update(api.KindWorkloadEndpoint, n, nil)
	}
	c.TakeDelta()
	if n := c.lists.size(); n != 0 {
		t.Errorf("%d lists held with no endpoint", n)
	}
}
