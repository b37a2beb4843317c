package api

// Encapsulation modes of an IPPool.
const (
	EncapNever       = "Never"
	EncapAlways      = "Always"
	EncapCrossSubnet = "CrossSubnet"
)

// Allowed uses of an IPPool.
const (
	IPPoolUseWorkload = "Workload"
	IPPoolUseTunnel   = "Tunnel"
)

// IPPool is a range of addresses that workloads get theirs from. It is cut
// into blocks of BlockSize, each affine to one host.
type IPPool struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     IPPoolSpec `json:"spec"`
}

// IPPoolSpec is an IPPool's desired state.
type IPPoolSpec struct {
	CIDR             string   `json:"cidr"`
	VXLANMode        string   `json:"vxlanMode,omitempty"`
	IPIPMode         string   `json:"ipipMode,omitempty"`
	NATOutgoing      bool     `json:"natOutgoing,omitempty"`
	Disabled         bool     `json:"disabled,omitempty"`
	DisableBGPExport bool     `json:"disableBGPExport,omitempty"`
	BlockSize        int      `json:"blockSize,omitempty"`
	NodeSelector     string   `json:"nodeSelector,omitempty"` // empty means all()
	AllowedUses      []string `json:"allowedUses,omitempty"`
}

// IPAMConfiguration holds cluster-wide IPAM settings; its one object is
// named "default".
type IPAMConfiguration struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta            `json:"metadata"`
	Spec     IPAMConfigurationSpec `json:"spec"`
}

// IPAMConfigurationSpec is the IPAM settings.
type IPAMConfigurationSpec struct {
	StrictAffinity     bool  `json:"strictAffinity"`
	AutoAllocateBlocks *bool `json:"autoAllocateBlocks,omitempty"` // nil is true (SetDefaults sets it)
	MaxBlocksPerHost   int   `json:"maxBlocksPerHost,omitempty"`   // 0 means no limit
}

// KindBlockAffinity names BlockAffinity. It is not in the kind table:
// IPAM owns affinities and keeps them under its own keys, so calyxctl
// neither applies nor lists them as resources; the syncer delivers them
// (through the IPAM package's source) to whatever computes routes.
const KindBlockAffinity = "BlockAffinity"

// States of a BlockAffinity, as IPAM writes them.
const (
	AffinityPending         = "pending"
	AffinityConfirmed       = "confirmed"
	AffinityPendingDeletion = "pendingDeletion"
)

// BlockAffinity records that a node claimed an IPAM block: the block's
// addresses live on that node, so routes to the block lead there.
type BlockAffinity struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     BlockAffinitySpec `json:"spec"`
}

// BlockAffinitySpec is one node's claim on one block.
type BlockAffinitySpec struct {
	Node  string `json:"node"`
	CIDR  string `json:"cidr"`
	State string `json:"state"`
}

// GetKind returns "BlockAffinity".
func (*BlockAffinity) GetKind() string { return KindBlockAffinity }

// GetTypeMeta implements Resource.
func (b *BlockAffinity) GetTypeMeta() *TypeMeta { return &b.TypeMeta }

// GetObjectMeta implements Resource.
func (b *BlockAffinity) GetObjectMeta() *ObjectMeta { return &b.Metadata }

// DeepCopyResource implements Resource.
func (b *BlockAffinity) DeepCopyResource() Resource { return deepCopy(b) }

// SetDefaults implements Resource; an affinity has none.
func (*BlockAffinity) SetDefaults() {}

// Validate implements Resource: a node name, a block CIDR and a known
// state.
func (b *BlockAffinity) Validate() error {
	var fe fieldErrors
	if b.Spec.Node == "" {
		fe.add("spec.node", "is required")
	}
	if _, err := parseCIDR(b.Spec.CIDR); err != nil {
		fe.add("spec.cidr", "expected a block CIDR, got %q", b.Spec.CIDR)
	}
	validateEnum(&fe, "spec.state", b.Spec.State, []string{AffinityPending, AffinityConfirmed, AffinityPendingDeletion}, false)
	return fe.result(b)
}
