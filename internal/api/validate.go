package api

import "regexp"

// nameRE is the DNS-subdomain rule for resource names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func validateMeta(fe *fieldErrors, m *ObjectMeta) {
	if m.Name == "" {
		fe.add("metadata.name", "must be set")
	} else if len(m.Name) > 253 || !nameRE.MatchString(m.Name) {
		fe.add("metadata.name", "%q must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", m.Name)
	}
}

// Validate checks the resource.
func (i *IPPool) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &i.Metadata)
	return fe.result(i)
}

// Validate checks the resource.
func (i *IPAMConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &i.Metadata)
	return fe.result(i)
}

// Validate checks the resource.
func (n *Node) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &n.Metadata)
	return fe.result(n)
}

// Validate checks the resource.
func (p *Profile) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &p.Metadata)
	return fe.result(p)
}

// Validate checks the resource.
func (g *GlobalNetworkPolicy) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &g.Metadata)
	return fe.result(g)
}

// Validate checks the resource.
func (g *GlobalNetworkSet) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &g.Metadata)
	return fe.result(g)
}

// Validate checks the resource.
func (w *WorkloadEndpoint) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &w.Metadata)
	return fe.result(w)
}

// Validate checks the resource.
func (h *HostEndpoint) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &h.Metadata)
	return fe.result(h)
}

// Validate checks the resource.
func (b *BGPPeer) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &b.Metadata)
	return fe.result(b)
}

// Validate checks the resource.
func (b *BGPConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &b.Metadata)
	return fe.result(b)
}

// Validate checks the resource.
func (n *NodeConfiguration) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &n.Metadata)
	return fe.result(n)
}
