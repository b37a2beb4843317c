package datastore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/google/go-cmp/cmp"
)

// TestEncodeMatchesMarshalStored checks that encode, which skips
// MarshalStored's deep copy, still stores exactly MarshalStored's bytes,
// and that the copy it returns is what a reader decodes from them, for an
// empty resource of every kind and for the API package's example documents
// (as many as its codec decodes).
func TestEncodeMatchesMarshalStored(t *testing.T) {
	var rs []api.Resource
	for _, k := range api.Kinds() {
		r := k.New()
		*r.GetTypeMeta() = api.TypeMeta{} // encode must set it
		r.GetObjectMeta().Name = "empty"
		rs = append(rs, r)
	}
	files, _ := filepath.Glob("../api/testdata/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := api.DecodeFile(f, data)
		if err != nil {
			t.Logf("skipping %s: %v", f, err)
			continue
		}
		rs = append(rs, decoded...)
	}
	wep := &api.WorkloadEndpoint{
		Metadata: api.ObjectMeta{Name: "w", ResourceVersion: "7", UID: "old", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{}},
		Spec:     api.WorkloadEndpointSpec{IPNetworks: []string{}, Ports: []api.EndpointPort{{Name: "http", Port: 80}}},
	}
	rs = append(rs, wep)
	ord := 1.5
	rs = append(rs, &api.GlobalNetworkPolicy{
		Metadata: api.ObjectMeta{Name: "p"},
		Spec: api.GlobalNetworkPolicySpec{Order: &ord, Ingress: []api.Rule{{
			Action: "Allow", Protocol: &api.Protocol{Name: "TCP"},
			Source: api.EntityRule{Nets: []string{"10.0.0.0/8"}, NotNets: []string{}},
			HTTP:   &api.HTTPMatch{Paths: []map[string]string{{"exact": "/"}}},
		}}},
	})
	if len(rs) < len(api.Kinds())+2 {
		t.Errorf("only %d resources to compare", len(rs))
	}
	for _, r := range rs {
		before, err := api.MarshalStored(r)
		if err != nil {
			t.Fatal(err)
		}
		out, got, err := encode(r, "uid-1", "2026-01-02T03:04:05Z")
		if err != nil {
			t.Fatal(err)
		}
		c := r.DeepCopyResource()
		c.GetObjectMeta().UID, c.GetObjectMeta().CreationTimestamp = "uid-1", "2026-01-02T03:04:05Z"
		want, err := api.MarshalStored(c)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("%s %q: encode differs from MarshalStored (-want +got):\n%s", r.GetKind(), r.GetObjectMeta().Name, diff)
		}
		if after, _ := api.MarshalStored(r); string(after) != string(before) {
			t.Errorf("%s %q: encode changed its argument", r.GetKind(), r.GetObjectMeta().Name)
		}
		kind, _ := lookupKind(r.GetKind())
		read, err := decode(kind, r.GetObjectMeta().Name, got, 5)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(read, written(out, 5)); diff != "" {
			t.Errorf("%s %q: the copy a write returns differs from what a read decodes (-read +returned):\n%s", r.GetKind(), r.GetObjectMeta().Name, diff)
		}
	}
}

func TestWriteResultSharesNothing(t *testing.T) {
	in := &api.WorkloadEndpoint{
		Metadata: api.ObjectMeta{Name: "w", Labels: map[string]string{"a": "b"}},
		Spec:     api.WorkloadEndpointSpec{IPNetworks: []string{"10.0.0.1/32"}, Ports: []api.EndpointPort{{Name: "http", Port: 80}}},
	}
	before := in.DeepCopyResource()
	out, _, err := encode(in, "u", "t")
	if err != nil {
		t.Fatal(err)
	}
	w := out.(*api.WorkloadEndpoint)
	w.Metadata.Labels["a"] = "changed"
	w.Spec.IPNetworks[0] = "changed"
	w.Spec.Ports[0].Name = "changed"
	if diff := cmp.Diff(before, api.Resource(in)); diff != "" {
		t.Errorf("changing the returned copy changed the caller's object:\n%s", diff)
	}
}
