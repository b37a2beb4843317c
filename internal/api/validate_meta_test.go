package api

import (
	"strings"
	"testing"
)

func TestValidateMetadata(t *testing.T) {
	withName := func(r Resource, name string) Resource {
		r.GetObjectMeta().Name = name
		return r
	}
	withMeta := func(mut func(m *ObjectMeta)) Resource {
		p := testProfile(nil)
		mut(&p.Metadata)
		return p
	}
	runValidateCases(t, []validateCase{
		{name: "dns name", r: withName(testProfile(nil), "net-a.example.com")},
		{name: "name missing", r: withName(testProfile(nil), ""), path: "metadata.name", msg: "must be set"},
		{name: "name upper case", r: withName(testProfile(nil), "Net-A"), path: "metadata.name", msg: "lower-case"},
		{name: "name underscore", r: withName(testPool(nil), "pool_a"), path: "metadata.name", msg: "lower-case"},
		{name: "name leading dash", r: withName(testPool(nil), "-pool"), path: "metadata.name", msg: "starting and ending"},
		{name: "name empty label", r: withName(testPool(nil), "a..b"), path: "metadata.name", msg: "lower-case"},
		{name: "name label over 63", r: withName(testPool(nil), strings.Repeat("a", 64)), path: "metadata.name", msg: "at most 63"},
		{name: "name over 253", r: withName(testPool(nil), strings.Repeat("a.", 127)+"a"), path: "metadata.name", msg: "at most 253"},
		{name: "node name", r: withName(testNode(nil), "ip-10-0-0-1.ec2.internal")},
		{name: "ipamconfig default", r: testIPAMConfig(nil)},
		{name: "ipamconfig other name", r: withName(testIPAMConfig(nil), "node.host-1"), path: "metadata.name", msg: `must be "default"`},
		{name: "bgpconfig default", r: testBGPConfig(nil)},
		{name: "bgpconfig per node", r: withName(testBGPConfig(nil), "node.host-1.example")},
		{name: "bgpconfig other", r: withName(testBGPConfig(nil), "global"), path: "metadata.name", msg: `"default" or "node.<nodename>"`},
		{name: "bgpconfig bad node", r: withName(testBGPConfig(nil), "node.Host_1"), path: "metadata.name", msg: "node name"},
		{name: "nodeconfig per node", r: withName(testNodeConfig(nil), "node.host-1")},
		{name: "nodeconfig bad", r: withName(testNodeConfig(nil), "host-1"), path: "metadata.name", msg: `"default" or "node.<nodename>"`},
		{name: "nodeconfig empty node", r: withName(testNodeConfig(nil), "node."), path: "metadata.name", msg: "must not be empty"},
		{name: "namespace", r: withMeta(func(m *ObjectMeta) { m.Namespace = "default" }), path: "metadata.namespace", msg: "must be empty"},
		{name: "labels ok", r: withMeta(func(m *ObjectMeta) {
			m.Labels = map[string]string{"app": "web", "calyx.dev/network": "net-a", "Empty_ok": "", "a.b-c_d": "V.1-x_y"}
		})},
		{name: "label key bad char", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"a b": "x"} }),
			path: `metadata.labels["a b"]`, msg: "letters, digits"},
		{name: "label key bad prefix", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"Calyx.dev/net": "x"} }),
			path: `metadata.labels["Calyx.dev/net"]`, msg: "prefix before '/'"},
		{name: "label key empty name", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"calyx.dev/": "x"} }),
			path: `metadata.labels["calyx.dev/"]`, msg: "name must not be empty"},
		{name: "label key name too long", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{strings.Repeat("k", 64): "x"} }),
			path: "metadata.labels." + strings.Repeat("k", 64), msg: "at most 63"},
		{name: "label value too long", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"app": strings.Repeat("v", 64)} }),
			path: "metadata.labels.app", msg: "at most 63"},
		{name: "label value bad", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"app": "web/1"} }),
			path: "metadata.labels.app", msg: "must be empty or letters"},
		{name: "label value trailing dash", r: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"app": "web-"} }),
			path: "metadata.labels.app", msg: "must be empty or letters"},
		{name: "annotation free value", r: withMeta(func(m *ObjectMeta) {
			m.Annotations = map[string]string{"calyx.dev/note": "anything at all: {}/\n"}
		})},
		{name: "annotation bad key", r: withMeta(func(m *ObjectMeta) { m.Annotations = map[string]string{"-note": "x"} }),
			path: `metadata.annotations["-note"]`, msg: "starting and ending"},
	})
}

// TestValidateListsAllFields checks that every bad field is reported, not
// just the first.
func TestValidateListsAllFields(t *testing.T) {
	p := testPool(func(p *IPPool) {
		p.Metadata.Name = "Bad"
		p.Spec.CIDR = "10.0.0.1/16"
		p.Spec.VXLANMode = "Sometimes"
		p.Spec.NodeSelector = "a ==="
	})
	p.SetDefaults()
	err := p.Validate()
	for _, path := range []string{"metadata.name", "spec.cidr", "spec.vxlanMode", "spec.nodeSelector"} {
		checkFieldError(t, err, path, "")
	}
	if got, want := err.Error(), `invalid IPPool "Bad": metadata.name: `; !strings.HasPrefix(got, want) {
		t.Errorf("Error() = %q, want prefix %q", got, want)
	}
	if !IsInvalid(err) {
		t.Errorf("IsInvalid(%v) = false", err)
	}
}
