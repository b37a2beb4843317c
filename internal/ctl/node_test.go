package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/localapi"
)

// The node status prints every section, with "none" for empty ones and
// the failure first when routing fails.
func TestWriteNodeStatus(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := localapi.NodeStatusResponse{
		Node: "h1", Ready: true,
		Datastore: localapi.DatastoreStatus{InSync: true, Revision: 42, LastUpdate: now.Add(-3 * time.Second)},
		VXLAN: []localapi.VXLANState{{Device: "vxlan.calyx", Address: "10.65.0.1", Underlay: "192.0.2.11", VNI: 4096,
			Peers: []localapi.VXLANPeerState{{Node: "h3", Address: "10.65.2.1", MAC: "66:00:00:00:00:33", Underlay: "198.51.100.13"}}}},
		Routes: []localapi.RouteState{
			{Destination: "10.65.0.0/26", Kind: "local-block", Node: "h1"},
			{Destination: "10.65.2.0/26", Kind: "vxlan", Node: "h3", Via: "10.65.2.1", Device: "vxlan.calyx"},
		},
		RoutingError: "adding route 10.65.9.0/26: network unreachable",
	}
	var b strings.Builder
	writeNodeStatus(&b, st, now)
	got := b.String()
	for _, want := range []string{
		"calyx-node h1: ready\n",
		"datastore: in sync, revision 42, last change 3s ago\n",
		"routing: FAILING: adding route 10.65.9.0/26: network unreachable\n",
		"BGP sessions:\n  none\n",
		"  vxlan.calyx: address 10.65.0.1, underlay 192.0.2.11, vni 4096, 1 peers\n",
		"  h3     10.65.2.1   66:00:00:00:00:33   198.51.100.13\n",
		"  10.65.0.0/26   local-block   h1     -           -\n",
		"Local endpoints:\n  none\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
