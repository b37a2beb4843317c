package api

import (
	"reflect"
	"testing"
	"unsafe"
)

// Two endpoints decoded apart hold one copy of the strings they have in
// common once shared, and their values do not change.
func TestShareStrings(t *testing.T) {
	mk := func(i string) *WorkloadEndpoint {
		return testWEP(func(w *WorkloadEndpoint) {
			w.Metadata.Name = "host-1-mesos-task-" + i + "-eth0"
			w.Metadata.Labels = map[string]string{"app": "web", "task": i}
			w.Metadata.Annotations = map[string]string{"calyx/handle": "h" + i}
		})
	}
	var got [2]*WorkloadEndpoint
	for i, n := range []string{"1", "2"} {
		b, err := MarshalStored(mk(n))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := LookupKind(KindWorkloadEndpoint)
		r, err := UnmarshalStored(k, b)
		if err != nil {
			t.Fatal(err)
		}
		want := r.DeepCopyResource()
		ShareStrings(r)
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("sharing changed the endpoint:\n got %+v\nwant %+v", r, want)
		}
		got[i] = r.(*WorkloadEndpoint)
	}
	same := func(what, a, b string) {
		t.Helper()
		if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
			t.Errorf("%s: %q and %q are two copies, want one", what, a, b)
		}
	}
	a, b := got[0], got[1]
	same("kind", a.Kind, b.Kind)
	same("node", a.Spec.Node, b.Spec.Node)
	same("orchestrator", a.Spec.Orchestrator, b.Spec.Orchestrator)
	same("profile", a.Spec.Profiles[0], b.Spec.Profiles[0])
	same("label value", a.Metadata.Labels["app"], b.Metadata.Labels["app"])
	for k := range a.Metadata.Labels {
		for k2 := range b.Metadata.Labels {
			if k == k2 {
				same("label key", k, k2)
			}
		}
	}
	if a.Metadata.Labels["task"] == b.Metadata.Labels["task"] {
		t.Error("distinct label values came out equal")
	}
}
