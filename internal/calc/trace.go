package calc

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
)

// TraceStep is one side of a traced packet.
type TraceStep struct {
	Dir  string     // Egress at the source, Ingress at the destination
	Addr netip.Addr // the packet's source or destination address
	// Endpoint and Node name the WorkloadEndpoint holding Addr and its
	// node; both empty when Addr is not a Calyx endpoint's, in which case
	// Decision is not used and the side does not deny.
	Endpoint, Node string
	Decision       Decision
}

// TraceResult is a packet's fate across the cluster.
type TraceResult struct {
	Allowed bool
	Steps   []TraceStep // egress side first, then ingress
}

// String renders the result: "allowed" or "denied", then one line per
// side, e.g.
//
//	allowed
//	egress  at h1/h1-cni-0123-eth0: policy allow-fe rule 0 (Allow)
//	ingress at h2/h2-cni-4567-eth0: profile net1 rule 0 (Allow)
func (t TraceResult) String() string {
	var b strings.Builder
	if t.Allowed {
		b.WriteString("allowed\n")
	} else {
		b.WriteString("denied\n")
	}
	for _, s := range t.Steps {
		if s.Endpoint == "" {
			fmt.Fprintf(&b, "%-7s at %s: not a Calyx endpoint\n", s.Dir, s.Addr)
			continue
		}
		fmt.Fprintf(&b, "%-7s at %s/%s: %s\n", s.Dir, s.Node, s.Endpoint, s.Decision)
	}
	return b.String()
}

// Trace evaluates a packet across the cluster: the egress side at the
// source endpoint (if Src is an endpoint's address) on the source's node,
// and the ingress side at the destination endpoint on its node, each by
// building New(thatNode)+Replace(rs) and calling Verdict on its State, so
// trace cannot disagree with what the agents program. It judges a new flow
// (Established is ignored).
func Trace(rs []api.Resource, p Packet) TraceResult {
	p.Established = false
	res := TraceResult{Allowed: true}
	states := map[string]*State{}
	for _, side := range []struct {
		dir  string
		addr netip.Addr
	}{{Egress, p.Src}, {Ingress, p.Dst}} {
		st := TraceStep{Dir: side.dir, Addr: side.addr}
		if w := endpointOf(rs, side.addr); w != nil {
			st.Endpoint, st.Node = w.Metadata.Name, w.Spec.Node
			s := states[st.Node]
			if s == nil {
				c := New(st.Node)
				c.Replace(rs)
				s = c.State()
				states[st.Node] = s
			}
			st.Decision = s.Verdict(st.Endpoint, side.dir, p)
			res.Allowed = res.Allowed && st.Decision.Allowed
		}
		res.Steps = append(res.Steps, st)
	}
	return res
}

// endpointOf finds the programmed WorkloadEndpoint (one with a node and an
// interface) holding a; with several, the smallest name.
func endpointOf(rs []api.Resource, a netip.Addr) *api.WorkloadEndpoint {
	a = a.Unmap()
	var found *api.WorkloadEndpoint
	for _, r := range rs {
		w, ok := r.(*api.WorkloadEndpoint)
		if !ok || w == nil || w.Spec.Node == "" || w.Spec.InterfaceName == "" {
			continue
		}
		for _, x := range parseAddrs(w.Spec.IPNetworks) {
			if x == a && (found == nil || w.Metadata.Name < found.Metadata.Name) {
				found = w
			}
		}
	}
	return found
}
