package datastore

import (
	"fmt"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The layer's own CPU per write and per event, without etcd: what a
// profile of bench/datastore attributes to this package.

// benchEndpoint is the i-th WorkloadEndpoint of the size and shape that
// bench/datastore writes (one CNI ADD's).
func benchEndpoint(i int) *api.WorkloadEndpoint {
	cid := fmt.Sprintf("%08x%04x%04x%048x", i, 0, 0, i*7919)
	return &api.WorkloadEndpoint{
		TypeMeta: api.TypeMeta{Kind: api.KindWorkloadEndpoint, APIVersion: api.APIVersion},
		Metadata: api.ObjectMeta{
			Name: fmt.Sprintf("node-1-mesos-%s-eth0", cid[:24]),
			Labels: map[string]string{
				"app": "web", "env": "prod", "calyx.dev/network": "blue",
				"projectcalico.org/orchestrator": "mesos", "projectcalico.org/namespace": "default",
			},
		},
		Spec: api.WorkloadEndpointSpec{
			Orchestrator: api.OrchestratorMesos, Workload: "task-" + cid[:12], Node: "node-1",
			ContainerID: cid, Endpoint: "eth0", InterfaceName: "calyx" + cid[54:],
			MAC:        fmt.Sprintf("ee:ee:ee:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
			IPNetworks: []string{fmt.Sprintf("10.65.%d.%d/32", i>>8&0xff, i&0xff)},
			Profiles:   []string{"blue"},
		},
	}
}

const (
	benchUID     = "00000000-0000-4000-8000-000000000001"
	benchCreated = "2026-01-02T03:04:05Z"
)

// BenchmarkEncode is the copy and JSON encoding of one write.
func BenchmarkEncode(b *testing.B) {
	w := benchEndpoint(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := encode(w, benchUID, benchCreated); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is the decoding of one stored value.
func BenchmarkDecode(b *testing.B) {
	w := benchEndpoint(1)
	_, val, err := encode(w, benchUID, benchCreated)
	if err != nil {
		b.Fatal(err)
	}
	kind := kindTable().byKind[api.KindWorkloadEndpoint]
	b.SetBytes(int64(len(val)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(kind, w.Metadata.Name, val, 5); err != nil {
			b.Fatal(err)
		}
	}
}

type nopHandler struct{}

func (nopHandler) OnSnapshot(Snapshot) {}
func (nopHandler) OnEvent(Event)       {}

// BenchmarkSyncerEvent is a Syncer's work for one watched put of a new key.
func BenchmarkSyncerEvent(b *testing.B) {
	s := NewSyncer(nil, nil, nil)
	kind := kindTable().byKind[api.KindWorkloadEndpoint]
	evs := make([]*clientv3.Event, 2000)
	for i := range evs {
		w := benchEndpoint(i)
		_, val, err := encode(w, benchUID, benchCreated)
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{
			Key: []byte(ResourceKey(kind, w.Metadata.Name)), Value: val, ModRevision: int64(i + 1), CreateRevision: int64(i + 1),
		}}
	}
	var st *syncState
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(evs) == 0 {
			st = &syncState{h: nopHandler{}, known: map[string]entry{}}
		}
		s.event(st, evs[i%len(evs)])
		i++
	}
}
