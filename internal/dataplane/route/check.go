package route

import (
	"context"
	"fmt"
	"slices"
)

// Check reads the kernel afresh (not the cache) and describes, one line
// each, what is wrong with ep's host side: the veth missing or down, a
// route missing or through another interface, a neighbour entry missing,
// with another MAC or not permanent, a sysctl with another value. An empty
// answer means all is well; the error is for failing to read.
func (r *Reconciler) Check(_ context.Context, ep Endpoint) ([]string, error) {
	l, err := r.k.LinkByName(ep.IfName)
	switch {
	case IsLinkNotFound(err):
		return []string{fmt.Sprintf("host interface %s is missing", ep.IfName)}, nil
	case err != nil:
		return nil, fmt.Errorf("checking endpoint %s: %w", ep.Name, err)
	}
	var problems []string
	if !l.Up {
		problems = append(problems, fmt.Sprintf("host interface %s is down", l.Name))
	}
	st, err := r.k.Dump()
	if err != nil {
		return nil, fmt.Errorf("checking endpoint %s: %w", ep.Name, err)
	}
	names := map[int]string{}
	for _, x := range st.Links {
		names[x.Index] = x.Name
	}
	for _, want := range routesFor(ep, l.Index) {
		i := slices.IndexFunc(st.Routes, func(rt Route) bool { return rt.Dst == want.Dst })
		switch {
		case i < 0:
			problems = append(problems, fmt.Sprintf("no host route to %s (want %s)", want.Dst, RouteText(want, l.Name)))
		case st.Routes[i].LinkIndex != l.Index:
			problems = append(problems, fmt.Sprintf("the host route to %s goes through %s, not %s", want.Dst, devName(names[st.Routes[i].LinkIndex], st.Routes[i].LinkIndex), l.Name))
		}
	}
	for _, want := range neighsFor(ep, l.Index) {
		i := slices.IndexFunc(st.Neighs, func(n Neigh) bool { return n.IP == want.IP && n.LinkIndex == l.Index })
		switch {
		case i < 0:
			problems = append(problems, fmt.Sprintf("no neighbour entry for %s on %s (want %s)", want.IP, l.Name, NeighText(want, l.Name)))
		case st.Neighs[i].MAC != want.MAC:
			problems = append(problems, fmt.Sprintf("the neighbour entry for %s on %s has MAC %s, want %s", want.IP, l.Name, st.Neighs[i].MAC, want.MAC))
		case !st.Neighs[i].Permanent:
			problems = append(problems, fmt.Sprintf("the neighbour entry for %s on %s is not permanent", want.IP, l.Name))
		}
	}
	want := append(globalSysctls(ep), ifaceSysctls(ep)...)
	keys := make([]string, len(want))
	for i, s := range want {
		keys[i] = s.Key
	}
	vals, err := r.k.ReadSysctls(keys)
	if err != nil {
		return nil, fmt.Errorf("checking endpoint %s: %w", ep.Name, err)
	}
	for _, s := range want {
		if v, ok := vals[s.Key]; !ok || v != s.Value {
			problems = append(problems, fmt.Sprintf("sysctl %s is %q, want %q", s.Key, v, s.Value))
		}
	}
	return problems, nil
}
