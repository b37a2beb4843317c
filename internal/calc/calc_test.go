package calc

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
)

// calc is pure: it imports only api, selector and the standard library
// (house style habit 4), so it cannot do I/O or start goroutines behind
// the reconcile loop's back.
func TestImportsArePure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/calyx-net/calyx/internal/api":      true,
		"github.com/calyx-net/calyx/internal/selector": true,
	}
	banned := map[string]bool{"os": true, "net/http": true, "time": true, "sync": true, "os/exec": true, "syscall": true}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && !allowed[p] || banned[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

// Update ignores a value whose type does not match its kind, and kinds
// calc does not use; a typed nil is a delete.
func TestUpdateOddInput(t *testing.T) {
	c := New("h1")
	c.Update(api.KindWorkloadEndpoint, "h1-a", valid(t, wep("h1-a", "h1", "calyx0000000001", nil, nil, "10.65.0.1/32")))
	c.TakeDelta()
	c.Update(api.KindWorkloadEndpoint, "h1-a", valid(t, pool("p", "10.65.0.0/16", true, false)))
	c.Update(api.KindBGPPeer, "peer", nil)
	c.Update("NoSuchKind", "x", nil)
	if d := c.TakeDelta(); !d.Empty() || len(c.State().Endpoints) != 1 {
		t.Fatalf("odd updates changed the state: %+v", d)
	}
	c.Update(api.KindWorkloadEndpoint, "h1-a", (*api.WorkloadEndpoint)(nil))
	if d := c.TakeDelta(); len(d.Endpoints) != 1 || len(c.State().Endpoints) != 0 {
		t.Fatalf("typed nil did not delete: %+v", d)
	}
	c.Replace([]api.Resource{nil, valid(t, wep("h1-b", "h1", "calyx0000000002", nil, nil, "10.65.0.2/32"))})
	if got := Text(c.State()); !strings.Contains(got, "endpoint h1-b") {
		t.Fatalf("Replace with a nil entry:\n%s", got)
	}
}

// ChainID follows Calico's chain names (calico-design.md §6.2:
// cali-pi-/cali-po-/cali-pri-/cali-pro-).
func TestChainID(t *testing.T) {
	for _, tc := range []struct{ kind, name, dir, want string }{
		{KindPolicy, "allow-fe", Ingress, "pi-allow-fe"},
		{KindPolicy, "allow-fe", Egress, "po-allow-fe"},
		{KindProfile, "net1", Ingress, "pri-net1"},
		{KindProfile, "net1", Egress, "pro-net1"},
	} {
		got := ChainID(tc.kind, tc.name, tc.dir)
		if got != tc.want {
			t.Errorf("ChainID(%s, %s, %s) = %s, want %s", tc.kind, tc.name, tc.dir, got, tc.want)
		}
		kind, name, dir, ok := parseChainID(got)
		if !ok || kind != tc.kind || name != tc.name || dir != tc.dir {
			t.Errorf("parseChainID(%s) = %s %s %s %v", got, kind, name, dir, ok)
		}
	}
}

// Set IDs are valid nftables identifiers of at most 40 characters.
func TestSetIDs(t *testing.T) {
	for _, tc := range stateCases(t) {
		c := New(tc.node, WithBGP(tc.bgp))
		c.Replace(tc.rs)
		for id := range c.State().Sets {
			if len(id) > 40 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Errorf("%s: set ID %q is not [a-z0-9-]{1,40}", tc.name, id)
			}
		}
	}
}

// A change replaces only the State values it affects: a remote endpoint's
// label change republishes the one set it leaves and the one it joins,
// and every other endpoint, chain and set keeps its value (reconcilers
// compare pointers first).
func TestUpdateKeepsUnchangedValues(t *testing.T) {
	var tc stateCase
	for _, c := range stateCases(t) {
		if c.name == "netsets" {
			tc = c
		}
	}
	c := New(tc.node, WithBGP(tc.bgp))
	c.Replace(tc.rs)
	c.TakeDelta()
	before := snap(c.State())
	moved := valid(t, wep("h3-ext", "h3", "calyx0000000008", lbl("zone", "external", "kind", "partner"), nil, "10.65.2.1/32"))
	c.Update(api.KindWorkloadEndpoint, "h3-ext", moved)
	after := snap(c.State())
	var replaced []string
	for k, v := range after.ptrs {
		if v != before.ptrs[k] {
			replaced = append(replaced, k)
		}
	}
	want := []string{"set/s-524820774c82"} // selector kind == "partner"
	if strings.Join(replaced, " ") != strings.Join(want, " ") {
		t.Fatalf("replaced %v, want %v", replaced, want)
	}
	if d := deltaKeys(c.TakeDelta()); strings.Join(d, " ") != strings.Join(want, " ") {
		t.Fatalf("delta %v, want %v", d, want)
	}
	if got := c.State().Verdict("h1-fe", Egress, tcp("10.65.0.1", "10.65.2.1", 80)); got.Allowed || got.Rule != 0 {
		t.Fatalf("after the move, egress to the partner endpoint: %v", verdictText(got))
	}
}
