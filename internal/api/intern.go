package api

import "unique"

// ShareStrings replaces the strings of r that resources of a cluster
// have in common (kind and API version, namespace, label keys and values,
// annotation keys, and a workload endpoint's orchestrator, node, endpoint
// name, gateways and profiles) with one copy of each held by the process,
// leaving r's value as it was. A process that keeps thousands of decoded
// resources, as calyx-node keeps its host's endpoints, then keeps each
// such string once, not once per resource. Annotation values, names and
// UIDs are left alone: they are seldom shared.
func ShareStrings(r Resource) {
	tm := r.GetTypeMeta()
	tm.Kind, tm.APIVersion = share(tm.Kind), share(tm.APIVersion)
	m := r.GetObjectMeta()
	m.Namespace = share(m.Namespace)
	m.Labels = shareMap(m.Labels, true)
	m.Annotations = shareMap(m.Annotations, false)
	if w, ok := r.(*WorkloadEndpoint); ok {
		s := &w.Spec
		s.Orchestrator, s.Node, s.Endpoint = share(s.Orchestrator), share(s.Node), share(s.Endpoint)
		s.IPv4Gateway, s.IPv6Gateway = share(s.IPv4Gateway), share(s.IPv6Gateway)
		for i := range s.Profiles {
			s.Profiles[i] = share(s.Profiles[i])
		}
	}
}

// share returns the process's copy of s.
func share(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

// shareMap returns m with its keys (and, with values, its values)
// shared. A key cannot be replaced in place, so the map is rebuilt.
func shareMap(m map[string]string, values bool) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if values {
			v = share(v)
		}
		out[share(k)] = v
	}
	return out
}
