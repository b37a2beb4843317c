package api

import "encoding/json"

// deepCopy copies a resource through its JSON form: every field of every
// kind is plain data, so the round trip is exact.
func deepCopy[T any](in *T) *T {
	b, err := json.Marshal(in)
	if err != nil {
		panic("api: resource does not marshal: " + err.Error()) // unreachable: plain data
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic("api: resource does not unmarshal: " + err.Error())
	}
	return out
}

// GetKind returns "IPPool".
func (*IPPool) GetKind() string { return KindIPPool }

// GetTypeMeta returns the type metadata.
func (i *IPPool) GetTypeMeta() *TypeMeta { return &i.TypeMeta }

// GetObjectMeta returns the metadata.
func (i *IPPool) GetObjectMeta() *ObjectMeta { return &i.Metadata }

// DeepCopyResource returns an independent copy.
func (i *IPPool) DeepCopyResource() Resource { return deepCopy(i) }

// GetKind returns "IPAMConfiguration".
func (*IPAMConfiguration) GetKind() string { return KindIPAMConfiguration }

// GetTypeMeta returns the type metadata.
func (i *IPAMConfiguration) GetTypeMeta() *TypeMeta { return &i.TypeMeta }

// GetObjectMeta returns the metadata.
func (i *IPAMConfiguration) GetObjectMeta() *ObjectMeta { return &i.Metadata }

// DeepCopyResource returns an independent copy.
func (i *IPAMConfiguration) DeepCopyResource() Resource { return deepCopy(i) }

// GetKind returns "Node".
func (*Node) GetKind() string { return KindNode }

// GetTypeMeta returns the type metadata.
func (n *Node) GetTypeMeta() *TypeMeta { return &n.TypeMeta }

// GetObjectMeta returns the metadata.
func (n *Node) GetObjectMeta() *ObjectMeta { return &n.Metadata }

// DeepCopyResource returns an independent copy.
func (n *Node) DeepCopyResource() Resource { return deepCopy(n) }

// GetKind returns "Profile".
func (*Profile) GetKind() string { return KindProfile }

// GetTypeMeta returns the type metadata.
func (p *Profile) GetTypeMeta() *TypeMeta { return &p.TypeMeta }

// GetObjectMeta returns the metadata.
func (p *Profile) GetObjectMeta() *ObjectMeta { return &p.Metadata }

// DeepCopyResource returns an independent copy.
func (p *Profile) DeepCopyResource() Resource { return deepCopy(p) }

// GetKind returns "GlobalNetworkPolicy".
func (*GlobalNetworkPolicy) GetKind() string { return KindGlobalNetworkPolicy }

// GetTypeMeta returns the type metadata.
func (g *GlobalNetworkPolicy) GetTypeMeta() *TypeMeta { return &g.TypeMeta }

// GetObjectMeta returns the metadata.
func (g *GlobalNetworkPolicy) GetObjectMeta() *ObjectMeta { return &g.Metadata }

// DeepCopyResource returns an independent copy.
func (g *GlobalNetworkPolicy) DeepCopyResource() Resource { return deepCopy(g) }

// GetKind returns "GlobalNetworkSet".
func (*GlobalNetworkSet) GetKind() string { return KindGlobalNetworkSet }

// GetTypeMeta returns the type metadata.
func (g *GlobalNetworkSet) GetTypeMeta() *TypeMeta { return &g.TypeMeta }

// GetObjectMeta returns the metadata.
func (g *GlobalNetworkSet) GetObjectMeta() *ObjectMeta { return &g.Metadata }

// DeepCopyResource returns an independent copy.
func (g *GlobalNetworkSet) DeepCopyResource() Resource { return deepCopy(g) }

// GetKind returns "WorkloadEndpoint".
func (*WorkloadEndpoint) GetKind() string { return KindWorkloadEndpoint }

// GetTypeMeta returns the type metadata.
func (w *WorkloadEndpoint) GetTypeMeta() *TypeMeta { return &w.TypeMeta }

// GetObjectMeta returns the metadata.
func (w *WorkloadEndpoint) GetObjectMeta() *ObjectMeta { return &w.Metadata }

// DeepCopyResource returns an independent copy.
func (w *WorkloadEndpoint) DeepCopyResource() Resource { return deepCopy(w) }

// GetKind returns "HostEndpoint".
func (*HostEndpoint) GetKind() string { return KindHostEndpoint }

// GetTypeMeta returns the type metadata.
func (h *HostEndpoint) GetTypeMeta() *TypeMeta { return &h.TypeMeta }

// GetObjectMeta returns the metadata.
func (h *HostEndpoint) GetObjectMeta() *ObjectMeta { return &h.Metadata }

// DeepCopyResource returns an independent copy.
func (h *HostEndpoint) DeepCopyResource() Resource { return deepCopy(h) }

// GetKind returns "BGPPeer".
func (*BGPPeer) GetKind() string { return KindBGPPeer }

// GetTypeMeta returns the type metadata.
func (b *BGPPeer) GetTypeMeta() *TypeMeta { return &b.TypeMeta }

// GetObjectMeta returns the metadata.
func (b *BGPPeer) GetObjectMeta() *ObjectMeta { return &b.Metadata }

// DeepCopyResource returns an independent copy.
func (b *BGPPeer) DeepCopyResource() Resource { return deepCopy(b) }

// GetKind returns "BGPConfiguration".
func (*BGPConfiguration) GetKind() string { return KindBGPConfiguration }

// GetTypeMeta returns the type metadata.
func (b *BGPConfiguration) GetTypeMeta() *TypeMeta { return &b.TypeMeta }

// GetObjectMeta returns the metadata.
func (b *BGPConfiguration) GetObjectMeta() *ObjectMeta { return &b.Metadata }

// DeepCopyResource returns an independent copy.
func (b *BGPConfiguration) DeepCopyResource() Resource { return deepCopy(b) }

// GetKind returns "NodeConfiguration".
func (*NodeConfiguration) GetKind() string { return KindNodeConfiguration }

// GetTypeMeta returns the type metadata.
func (n *NodeConfiguration) GetTypeMeta() *TypeMeta { return &n.TypeMeta }

// GetObjectMeta returns the metadata.
func (n *NodeConfiguration) GetObjectMeta() *ObjectMeta { return &n.Metadata }

// DeepCopyResource returns an independent copy.
func (n *NodeConfiguration) DeepCopyResource() Resource { return deepCopy(n) }
