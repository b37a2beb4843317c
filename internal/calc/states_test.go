package calc

import (
	"flag"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/api"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Each datastore state gives the golden desired state.
func TestStates(t *testing.T) {
	for _, tc := range stateCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tc.node, WithBGP(tc.bgp))
			c.Replace(tc.rs)
			checkGolden(t, tc.name, Text(c.State()))
		})
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

// rkey names a resource.
type rkey struct{ kind, name string }

func keyOf(r api.Resource) rkey { return rkey{r.GetKind(), r.GetObjectMeta().Name} }

// junk returns resources that a walk adds and later deletes or replaces:
// variants of the case's own resources (same names, other labels) and
// unrelated resources that select or are selected by everything.
func junk(t *testing.T, rs []api.Resource) []api.Resource {
	t.Helper()
	var out []api.Resource
	for _, r := range rs {
		v := r.DeepCopyResource()
		m := v.GetObjectMeta()
		m.Labels = maps.Clone(m.Labels)
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels["role"] = "junk"
		switch x := v.(type) {
		case *api.WorkloadEndpoint:
			x.Spec.IPNetworks = append(x.Spec.IPNetworks, "10.99.0.1/32")
			x.Spec.Profiles = append(x.Spec.Profiles, "junk-prof")
		case *api.GlobalNetworkPolicy:
			x.Spec.Order = ord(0.5)
			x.Spec.Selector = "all()"
		case *api.Profile:
			x.Spec.LabelsToApply = map[string]string{"role": "frontend", "net": "junk"}
		case *api.IPPool:
			x.Spec.NATOutgoing = !x.Spec.NATOutgoing
		}
		out = append(out, raw(v))
	}
	out = append(out,
		valid(t, wep("junk-local", "h1", "calyx00000000ff", lbl("role", "frontend"), []string{"net1", "junk-prof"}, "10.65.0.1/32", "10.99.0.2/32")),
		valid(t, wep("junk-remote", "h9", "calyx00000000fe", lbl("role", "backend", "zone", "external"), nil, "10.65.0.2/32")),
		valid(t, profile("junk-prof", lbl("kind", "partner"), rules(deny()), nil)),
		valid(t, gnp("junk-pol", ord(0), "all()", []string{"Ingress", "Egress"},
			rules(api.Rule{Action: api.ActionDeny, Source: api.EntityRule{Selector: "role == 'frontend'"}}),
			rules(api.Rule{Action: api.ActionAllow, Destination: api.EntityRule{Selector: "has(role)", Ports: ports("http")}, Protocol: proto("TCP")}))),
		valid(t, netset("junk-set", lbl("zone", "external", "role", "backend"), "10.65.0.0/24")),
		valid(t, hep("junk-hep", "h1", "eth0", lbl("host", "h1"), nil, "192.168.1.9")),
		valid(t, pool("junk-pool", "10.99.0.0/16", true, false)),
		valid(t, &api.NodeConfiguration{Metadata: api.ObjectMeta{Name: "node.h1"}, Spec: api.NodeConfigurationSpec{DefaultEndpointToHostAction: "Drop"}}),
	)
	return out
}

// snapshot is a State's maps copied shallowly (published values are
// immutable) with each key's rendering at the time.
type snapshot struct {
	ptrs map[string]any
	text map[string]string
}

func snap(s *State) snapshot {
	sn := snapshot{ptrs: map[string]any{}, text: map[string]string{}}
	add := func(k string, v any, one *State) {
		sn.ptrs[k] = v
		sn.text[k] = Text(one)
	}
	for k, v := range s.Endpoints {
		add("ep/"+k, v, &State{Endpoints: map[string]*Endpoint{k: v}})
	}
	for k, v := range s.HostEndpoints {
		add("hep/"+k, v, &State{HostEndpoints: map[string]*HostEndpoint{k: v}})
	}
	for k, v := range s.Chains {
		add("chain/"+k, v, &State{Chains: map[string]*Chain{k: v}})
	}
	for k, v := range s.Sets {
		add("set/"+k, v, &State{Sets: map[string]*Set{k: v}})
	}
	add("config", s.Config, &State{Config: s.Config})
	for k, v := range s.Routes {
		add("route/"+k.String(), v, &State{Routes: map[netip.Prefix]*Route{k: v}})
	}
	if len(s.VXLAN) > 0 {
		// One key for every family, as Delta.VXLAN is one flag; the
		// rendering stands in for the value.
		one := &State{VXLAN: s.VXLAN}
		add("vxlan", Text(one), one)
	}
	return sn
}

func deltaKeys(d Delta) []string {
	var out []string
	for _, k := range d.Endpoints {
		out = append(out, "ep/"+k)
	}
	for _, k := range d.HostEndpoints {
		out = append(out, "hep/"+k)
	}
	for _, k := range d.Chains {
		out = append(out, "chain/"+k)
	}
	for _, k := range d.Sets {
		out = append(out, "set/"+k)
	}
	if d.Config {
		out = append(out, "config")
	}
	for _, k := range d.Routes {
		out = append(out, "route/"+k.String())
	}
	if d.VXLAN {
		out = append(out, "vxlan")
	}
	slices.Sort(out)
	return out
}

// checkDelta compares a delta with the keys whose value differs between
// two snapshots: exactly those by deep equality, and at least those whose
// rendering differs (which also catches a published value changed in
// place).
func checkDelta(t *testing.T, step string, before, after snapshot, d Delta) {
	t.Helper()
	var want, wantText []string
	for k := range joinKeys(before.ptrs, after.ptrs) {
		if !reflect.DeepEqual(before.ptrs[k], after.ptrs[k]) {
			want = append(want, k)
		}
		if before.text[k] != after.text[k] {
			wantText = append(wantText, k)
		}
	}
	slices.Sort(want)
	got := deltaKeys(d)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%s: delta (-changed +delta):\n%s", step, d)
	}
	for _, k := range wantText {
		if !slices.Contains(got, k) {
			t.Fatalf("%s: %s rendered differently but is not in the delta", step, k)
		}
	}
}

func joinKeys(a, b map[string]any) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

// The desired state depends only on the resources held, not on the order
// of the events that brought them (issue 8; the route reconciler's
// TestPathIndependence does the same for routes). Each case is replayed as
// Updates in random orders, through junk that is later deleted or
// replaced, and every step's delta names exactly the keys that changed.
func TestPathIndependence(t *testing.T) {
	cases := stateCases(t)
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := New(tc.node, WithBGP(tc.bgp))
			ref.Replace(tc.rs)
			want := Text(ref.State())
			extra := junk(t, tc.rs)
			// Resources of the other cases are junk too.
			for cj, other := range cases {
				if cj != ci {
					extra = append(extra, other.rs...)
				}
			}
			for seed := range uint64(40) {
				rng := rand.New(rand.NewPCG(seed, uint64(ci)))
				c := New(tc.node, WithBGP(tc.bgp))
				held := map[rkey]api.Resource{}
				prev := snap(c.State())
				c.TakeDelta()
				apply := func(step string, k rkey, r api.Resource) {
					c.Update(k.kind, k.name, r)
					if r == nil {
						delete(held, k)
					} else {
						held[k] = r
					}
					checkClosed(t, step, c.State())
					next := snap(c.State())
					checkDelta(t, step, prev, next, c.TakeDelta())
					prev = next
				}
				pool := append(slices.Clone(tc.rs), extra...)
				for i := range 30 + rng.IntN(30) {
					if len(held) > 0 && rng.IntN(4) == 0 {
						ks := slices.SortedFunc(maps.Keys(held), cmpKeys)
						k := ks[rng.IntN(len(ks))]
						apply("delete", k, nil)
						continue
					}
					r := pool[rng.IntN(len(pool))]
					apply("step "+string(rune('0'+i%10)), keyOf(r), r)
				}
				// Converge: delete what the case does not hold, then set
				// the case's resources, in random order.
				type op struct {
					k rkey
					r api.Resource
				}
				target := map[rkey]api.Resource{}
				for _, r := range tc.rs {
					target[keyOf(r)] = r
				}
				var ops []op
				for k := range held {
					if _, ok := target[k]; !ok {
						ops = append(ops, op{k, nil})
					}
				}
				for k, r := range target {
					if held[k] != r {
						ops = append(ops, op{k, r})
					}
				}
				slices.SortFunc(ops, func(a, b op) int { return cmpKeys(a.k, b.k) })
				rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
				for _, o := range ops {
					apply("converge", o.k, o.r)
				}
				if d := cmp.Diff(want, Text(c.State())); d != "" {
					t.Fatalf("seed %d: state after random walk (-replace +walk):\n%s", seed, d)
				}
				if !reflect.DeepEqual(ref.State(), c.State()) {
					t.Fatalf("seed %d: states render the same but differ", seed)
				}
				checkListCounts(t, c)
				// Replace on a calculator holding another state reaches
				// the same State too, and its delta is exact.
				r := New(tc.node, WithBGP(tc.bgp))
				r.Replace(extra)
				before := snap(r.State())
				r.TakeDelta()
				r.Replace(tc.rs)
				checkDelta(t, "replace", before, snap(r.State()), r.TakeDelta())
				if !reflect.DeepEqual(ref.State(), r.State()) {
					t.Fatalf("seed %d: Replace over junk differs from a fresh Replace:\n%s", seed,
						cmp.Diff(want, Text(r.State())))
				}
			}
		})
	}
}

func cmpKeys(a, b rkey) int {
	if a.kind != b.kind {
		if a.kind < b.kind {
			return -1
		}
		return 1
	}
	if a.name < b.name {
		return -1
	}
	if a.name > b.name {
		return 1
	}
	return 0
}

// checkClosed checks that State holds exactly the chains some endpoint's
// tier uses and exactly the sets some chain's rules use.
func checkClosed(t *testing.T, step string, s *State) {
	t.Helper()
	chains := map[string]bool{}
	for _, e := range s.Endpoints {
		for _, id := range chainIDs(e.Ingress, e.Egress) {
			chains[id] = true
		}
	}
	for _, h := range s.HostEndpoints {
		for _, id := range chainIDs(h.Ingress, h.Egress) {
			chains[id] = true
		}
	}
	sets := map[string]bool{}
	for id, ch := range s.Chains {
		if !chains[id] {
			t.Fatalf("%s: chain %s is in State but no tier uses it", step, id)
		}
		for _, r := range ch.Rules {
			for _, m := range []Match{r.Src, r.Dst} {
				for _, sid := range append(append([]string{m.NamedPortSet, m.NotNamedPortSet()}, m.Sets...), m.NotSets()...) {
					if sid != "" {
						sets[sid] = true
					}
				}
			}
		}
	}
	for id := range chains {
		if s.Chains[id] == nil {
			t.Fatalf("%s: a tier uses chain %s, which is not in State", step, id)
		}
	}
	for id := range s.Sets {
		if !sets[id] {
			t.Fatalf("%s: set %s is in State but no rule uses it", step, id)
		}
	}
	for id := range sets {
		if s.Sets[id] == nil {
			t.Fatalf("%s: a rule uses set %s, which is not in State", step, id)
		}
	}
}
