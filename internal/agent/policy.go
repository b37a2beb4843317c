package agent

import (
	"context"

	"github.com/calyx-net/calyx/internal/api"
)

// endpointPolicy enforces the network policy of local endpoints. READY
// calls Apply after the endpoint's routes are in place and before it
// answers, so that a container never carries traffic its policy does not
// allow; DEL and garbage collection call Remove.
type endpointPolicy interface {
	Apply(ctx context.Context, ep *api.WorkloadEndpoint) error
	Remove(ctx context.Context, name string) error
}

// allowAllPolicy lets every endpoint send and receive anything. It is what
// calyx-node enforces until its nftables policy dataplane is plugged into
// this seam; the profile calyx-node creates for each network already
// describes the intended behaviour (members talk to each other, egress is
// allowed).
type allowAllPolicy struct{}

func (allowAllPolicy) Apply(context.Context, *api.WorkloadEndpoint) error { return nil }
func (allowAllPolicy) Remove(context.Context, string) error               { return nil }

var _ endpointPolicy = allowAllPolicy{}
