package agent

import (
	"context"
	"maps"
	"net/http"
	"slices"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
)

// nodeStatus answers calyxctl node status: read on the reconcile loop,
// which owns calc's state, so the answer is one consistent picture of
// what the loop last computed.
type nodeStatus struct {
	health health
	loop   *reconcileLoop
	bgp    *bgpRunner // nil: BGP off
	// syncers report the datastore syncers' progress.
	syncers []func() datastore.Status
}

func (n nodeStatus) serve(w http.ResponseWriter, r *http.Request) {
	ok, why := n.health.ready()
	resp := localapi.NodeStatusResponse{Node: n.health.node, Ready: ok, Message: why}
	resp.Datastore.InSync = true
	for _, st := range n.syncers {
		s := st()
		resp.Datastore.InSync = resp.Datastore.InSync && s.InSync
		resp.Datastore.Revision = max(resp.Datastore.Revision, s.Revision)
		if s.LastUpdate.After(resp.Datastore.LastUpdate) {
			resp.Datastore.LastUpdate = s.LastUpdate
		}
	}
	err := n.loop.do(r.Context(), func(context.Context) error {
		st := n.loop.calc.State()
		fillNodeStatus(&resp, st)
		if n.bgp != nil && st.BGP != nil {
			for _, l := range n.bgp.usable(st.BGP.Subnets) {
				if st.Routes[l.Prefix] == nil {
					resp.Routes = append(resp.Routes, localapi.RouteState{Destination: l.Prefix.String(), Kind: "bgp", Node: l.Peer, Via: l.NextHop.String()})
				}
			}
		}
		if n.loop.routingErr != nil {
			resp.RoutingError = n.loop.routingErr.Error()
		}
		return nil
	})
	if err == nil && n.bgp != nil {
		var peers []localapi.BGPPeerState
		if peers, err = n.bgp.status(r.Context()); err == nil && peers != nil {
			resp.BGP = peers
		}
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, localapi.Error{Code: cniTryAgainLater, Message: "calyx-node is busy: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// fillNodeStatus copies the desired state's endpoints, VXLAN devices and
// routes into resp, sorted. Pure.
func fillNodeStatus(resp *localapi.NodeStatusResponse, st *calc.State) {
	resp.Endpoints = []localapi.EndpointState{}
	for _, name := range slices.Sorted(maps.Keys(st.Endpoints)) {
		ep := st.Endpoints[name]
		es := localapi.EndpointState{Name: name, Interface: ep.IfName, Addresses: []string{}}
		for _, a := range ep.Addrs {
			es.Addresses = append(es.Addresses, a.String())
		}
		resp.Endpoints = append(resp.Endpoints, es)
	}
	resp.VXLAN = []localapi.VXLANState{}
	for _, fam := range slices.Sorted(maps.Keys(st.VXLAN)) {
		v := st.VXLAN[fam]
		vs := localapi.VXLANState{Device: v.Name, Address: v.Addr.String(), Underlay: v.Local.String(), VNI: v.VNI, Peers: []localapi.VXLANPeerState{}}
		for _, p := range v.Peers {
			vs.Peers = append(vs.Peers, localapi.VXLANPeerState{Node: p.Node, Address: p.Addr.String(), MAC: p.MAC.String(), Underlay: p.Underlay.String()})
		}
		resp.VXLAN = append(resp.VXLAN, vs)
	}
	resp.Routes = []localapi.RouteState{}
	for _, r := range remoteRoutes(st.Routes) {
		cr := st.Routes[r.Dst]
		rs := localapi.RouteState{Destination: r.Dst.String(), Kind: cr.Kind, Node: cr.Node, Device: cr.Dev}
		if cr.Gw.IsValid() {
			rs.Via = cr.Gw.String()
		}
		if cr.Borrowed {
			rs.Kind += " (borrowed)"
		}
		resp.Routes = append(resp.Routes, rs)
	}
	resp.BGP = []localapi.BGPPeerState{}
}
