package ipam

import (
	"fmt"
	"strings"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// AffinitySource is the datastore source of block affinities: a syncer
// over it delivers every node's claims as BlockAffinity resources, named
// "<node>/<escaped cidr>" (the key below affinity/), which is what calc
// turns into routes to other hosts' blocks. Affinities stay raw documents
// under the IPAM prefix because the allocator writes them in the same
// transaction as their block.
func AffinitySource() datastore.Source {
	return datastore.Source{
		Prefix: affinityPrefix,
		Parse: func(key string) (string, string, bool) {
			if _, _, ok := affinityFromKey(key); !ok {
				return "", "", false
			}
			return api.KindBlockAffinity, strings.TrimPrefix(key, affinityPrefix), true
		},
		Decode: decodeAffinityResource,
	}
}

// decodeAffinityResource turns a stored affinity into a BlockAffinity.
func decodeAffinityResource(kind, name string, value []byte) (api.Resource, error) {
	node, cidr, ok := affinityFromKey(affinityPrefix + name)
	if kind != api.KindBlockAffinity || !ok {
		return nil, fmt.Errorf("not a block affinity key: %s%s", affinityPrefix, name)
	}
	state := decodeAffinity(value)
	if state == "" {
		return nil, fmt.Errorf("affinity of node %q for block %s: expected {\"state\": ...}, got %q", node, cidr, value)
	}
	a := &api.BlockAffinity{
		TypeMeta: api.TypeMeta{Kind: api.KindBlockAffinity, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{Name: name},
		Spec:     api.BlockAffinitySpec{Node: node, CIDR: cidr.String(), State: state},
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}
