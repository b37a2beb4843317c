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
