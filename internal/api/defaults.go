package api

// SetDefaults fills in defaults.
func (i *IPPool) SetDefaults() {
	i.TypeMeta = TypeMeta{Kind: KindIPPool, APIVersion: APIVersion}
	if i.Spec.BlockSize == 0 {
		i.Spec.BlockSize = 26
	}
}

// SetDefaults fills in defaults.
func (i *IPAMConfiguration) SetDefaults() {
	i.TypeMeta = TypeMeta{Kind: KindIPAMConfiguration, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (n *Node) SetDefaults() {
	n.TypeMeta = TypeMeta{Kind: KindNode, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (p *Profile) SetDefaults() {
	p.TypeMeta = TypeMeta{Kind: KindProfile, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (g *GlobalNetworkPolicy) SetDefaults() {
	g.TypeMeta = TypeMeta{Kind: KindGlobalNetworkPolicy, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (g *GlobalNetworkSet) SetDefaults() {
	g.TypeMeta = TypeMeta{Kind: KindGlobalNetworkSet, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (w *WorkloadEndpoint) SetDefaults() {
	w.TypeMeta = TypeMeta{Kind: KindWorkloadEndpoint, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (h *HostEndpoint) SetDefaults() {
	h.TypeMeta = TypeMeta{Kind: KindHostEndpoint, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (b *BGPPeer) SetDefaults() {
	b.TypeMeta = TypeMeta{Kind: KindBGPPeer, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (b *BGPConfiguration) SetDefaults() {
	b.TypeMeta = TypeMeta{Kind: KindBGPConfiguration, APIVersion: APIVersion}
}

// SetDefaults fills in defaults.
func (n *NodeConfiguration) SetDefaults() {
	n.TypeMeta = TypeMeta{Kind: KindNodeConfiguration, APIVersion: APIVersion}
}
