package cni

import (
	"context"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/calyx-net/calyx/internal/localapi"
)

// A calyx-node that does not answer before the plugin's own deadline (its
// datastore is down and it could not say so in time) is a transient
// failure: code 11, so that the runtime retries, not 999.
func TestAgentTimeoutIsTryAgain(t *testing.T) {
	r := newRun(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the fake agent's server closes
	r.agent.answer[localapi.PathCNIAdd] = func([]byte) (int, any) {
		<-release
		return 200, localapi.AddResponse{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := r.plugin.Add(ctx, cmdArgs(r.conf(t, "1.1.0", nil)))
	checkCNIError(t, err, types.ErrTryAgainLater, "calyx-node did not answer in time")
}
