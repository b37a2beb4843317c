package calc

import (
	"testing"
	"unsafe"

	"github.com/calyx-net/calyx/internal/api"
)

// A compiled rule lives as long as its policy is in use, on every host
// where an endpoint uses it: its size is memory per rule (bench/footprint
// compiles 5,000). A rule without negative matches carries none.
func TestRuleSize(t *testing.T) {
	if s := unsafe.Sizeof(Rule{}); s > 208 {
		t.Errorf("a Rule is %d bytes, want at most 208", s)
	}
	tcp := api.ProtocolFromString("TCP")
	plain := api.Rule{Action: api.ActionAllow, Protocol: &tcp, Source: api.EntityRule{Selector: `role == "web"`},
		Destination: api.EntityRule{Ports: []api.Port{api.SinglePort(80)}}}
	r, _, ok := compileRule(0, &plain)
	if !ok || r.Src.Not != nil || r.Dst.Not != nil {
		t.Errorf("a rule without negative matches: ok %v, negative halves %+v, %+v; want none", ok, r.Src.Not, r.Dst.Not)
	}
	neg := api.Rule{Action: api.ActionDeny, Protocol: &tcp, Source: api.EntityRule{NotNets: []string{"10.0.0.0/8"}},
		Destination: api.EntityRule{NotPorts: []api.Port{api.SinglePort(25)}}}
	r, _, ok = compileRule(1, &neg)
	if !ok || len(r.Src.NotSets()) != 1 || len(r.Src.Sets) != 0 || len(r.Dst.NotPorts()) != 1 || r.Dst.NotNamedPortSet() != "" {
		t.Errorf("notNets and notPorts: ok %v, source %+v (negative %+v), destination %+v (negative %+v)",
			ok, r.Src, r.Src.Not, r.Dst, r.Dst.Not)
	}
}
