package testnet

import "github.com/calyx-net/calyx/internal/api"

// IPPool returns an IP pool resource with the given name, CIDR and block
// size (0 leaves the size to SetDefaults), and its kind and API version
// set, as calyxctl would store it. Tests add labels or other fields to the
// result.
func IPPool(name, cidr string, blockSize int) *api.IPPool {
	return &api.IPPool{
		TypeMeta: api.TypeMeta{Kind: api.KindIPPool, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.IPPoolSpec{CIDR: cidr, BlockSize: blockSize},
	}
}
