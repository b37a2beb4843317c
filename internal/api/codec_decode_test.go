package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const goodPool = `apiVersion: calyx.dev/v1
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.0.0.0/16
`

// TestDecodeErrors feeds bad input and checks that the error names the
// document, the field path and what was expected.
func TestDecodeErrors(t *testing.T) {
	gnp := func(rule string) string {
		return "apiVersion: calyx.dev/v1\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\nspec:\n  ingress:\n  - " +
			strings.ReplaceAll(strings.TrimSpace(rule), "\n", "\n    ") + "\n"
	}
	for _, tc := range []struct {
		name  string
		in    string
		index int
		item  int
		path  string
		msg   string // substring of Msg for the field at path
		text  string // substring of Error()
	}{
		{name: "malformed yaml", in: goodPool + "---\nkind: IPPool\nmetadata:\n  name: a\n   spec: x\n", index: 1, item: -1,
			msg: "malformed YAML: line 11: mapping values are not allowed", text: "document 2: malformed YAML"},
		{name: "malformed yaml flow", in: "---\n# first\n" + "{kind: [IPPool\n", index: 0, item: -1, msg: "malformed YAML"},
		{name: "duplicate yaml key", in: goodPool + "  cidr: 10.1.0.0/16\n", index: 0, item: -1, msg: `line 7: key "cidr" already set`},
		{name: "malformed json", in: "{\"apiVersion\": \"calyx.dev/v1\",\n \"kind\": \"IPPool\" \"metadata\": {}}", index: 0, item: -1,
			msg: "malformed JSON at line 2, column 19: invalid character '\"' after object key:value pair"},
		{name: "truncated json", in: `{"apiVersion": "calyx.dev/v1", "kind": "IPPool", `, index: 0, item: -1, msg: "malformed JSON: unexpected end of input"},
		{name: "second json value malformed", in: `{"apiVersion": "calyx.dev/v1", "kind": "IPPool", "metadata": {"name": "a"}, "spec": {"cidr": "10.0.0.0/16"}} {]`,
			index: 1, item: -1, msg: "malformed JSON at line 1, column 111"},
		{name: "duplicate json key", in: `{"apiVersion": "calyx.dev/v1", "kind": "IPPool", "spec": {"cidr": "10.0.0.0/8", "cidr": "10.0.0.0/16"}}`,
			index: 0, item: -1, path: "spec.cidr", msg: "key given twice"},
		{name: "scalar document", in: "just text\n", index: 0, item: -1, msg: "expected a resource (a mapping with apiVersion, kind, metadata and spec), got string"},
		{name: "unknown kind", in: "apiVersion: calyx.dev/v1\nkind: Pool\nmetadata: {name: a}\n", index: 0, item: -1, path: "kind",
			msg:  `"Pool" is not a Calyx kind; expected one of: BGPConfiguration, BGPPeer, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IPAMConfiguration, IPPool, Node, NodeConfiguration, Profile, WorkloadEndpoint`,
			text: `document 1 (Pool "a"): kind: "Pool" is not a Calyx kind`},
		{name: "kind alias not accepted", in: "apiVersion: calyx.dev/v1\nkind: ippool\n", index: 0, item: -1, path: "kind", msg: `did you mean "IPPool"?`},
		{name: "missing kind", in: "apiVersion: calyx.dev/v1\nmetadata: {name: a}\n", index: 0, item: -1, path: "kind", msg: "must be set to one of: BGPConfiguration,"},
		{name: "missing apiVersion", in: "kind: IPPool\nmetadata: {name: a}\n", index: 0, item: -1, path: "apiVersion",
			msg: `must be set to "calyx.dev/v1" (or "projectcalico.org/v3" for Calico manifests)`},
		{name: "wrong apiVersion", in: "apiVersion: projectcalico.org/v1\nkind: IPPool\n", index: 0, item: -1, path: "apiVersion",
			msg: `"projectcalico.org/v1" is not supported: expected "calyx.dev/v1" or "projectcalico.org/v3"`},
		{name: "calico v1 lower-case kind", in: "apiVersion: v1\nkind: ipPool\nmetadata: {cidr: 10.0.0.0/8}\n", index: 0, item: -1, path: "apiVersion", msg: `"v1" is not supported`},
		{name: "namespaced calico kind", in: "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a, namespace: prod}\n", index: 0, item: -1,
			path: "kind", msg: "use GlobalNetworkPolicy"},
		{name: "unknown top-level field", in: goodPool + "status: {}\n", index: 0, item: -1, path: "status",
			msg: "unknown field; expected one of: apiVersion, kind, metadata, spec"},
		{name: "unknown nested field with suggestion", in: gnp("action: Allow\ndestinaton:\n  ports: [80]"), index: 0, item: -1,
			path: "spec.ingress[0].destinaton", msg: `unknown field; did you mean "destination"?`,
			text: `document 1 (GlobalNetworkPolicy "p"): spec.ingress[0].destinaton: unknown field; did you mean "destination"?`},
		{name: "unknown field wrong case", in: strings.Replace(goodPool, "cidr:", "CIDR:", 1), index: 0, item: -1, path: "spec.CIDR", msg: `did you mean "cidr"?`},
		{name: "unknown field listing", in: gnp("action: Allow\nsource:\n  xyzzy: 1"), index: 0, item: -1, path: "spec.ingress[0].source.xyzzy",
			msg: "unknown field; expected one of: namespaceSelector, nets, notNets, notPorts, notSelector, ports, selector, serviceAccounts"},
		{name: "all unknown fields reported", in: goodPool + "  natOutgoin: true\n  blokSize: 24\n", index: 0, item: -1, path: "spec.natOutgoin",
			text: `spec.blokSize: unknown field; did you mean "blockSize"?; spec.natOutgoin: unknown field; did you mean "natOutgoing"?`},
		{name: "wrong type string", in: strings.Replace(goodPool, "10.0.0.0/16", "[10.0.0.0/16]", 1), index: 0, item: -1, path: "spec.cidr",
			msg: "expected a string, got a list"},
		{name: "wrong type int", in: goodPool + "  blockSize: \"26\"\n", index: 0, item: -1, path: "spec.blockSize", msg: `expected an integer, got string "26"`},
		{name: "wrong type bool", in: goodPool + "  natOutgoing: 1\n", index: 0, item: -1, path: "spec.natOutgoing", msg: "expected true or false, got number 1"},
		{name: "unquoted boolean label", in: strings.Replace(goodPool, "  name: pool-a\n", "  name: pool-a\n  labels: {enabled: yes}\n", 1), index: 0, item: -1,
			path: "metadata.labels.enabled", msg: "quote the value"},
		{name: "invalid cidr", in: goodPool + "---\n" + strings.Replace(goodPool, "10.0.0.0/16", "10.0.0.0/33", 1), index: 1, item: -1,
			path: "spec.cidr", msg: `"10.0.0.0/33" is not a valid CIDR`,
			text: `document 2 (IPPool "pool-a"): spec.cidr: "10.0.0.0/33" is not a valid CIDR`},
		{name: "invalid selector", in: gnp("action: Allow\nsource:\n  selector: role = 'db'"), index: 0, item: -1,
			path: "spec.ingress[0].source.selector", msg: `invalid selector "role = 'db'"`},
		{name: "invalid port number", in: gnp("action: Allow\nprotocol: TCP\ndestination:\n  ports: [80, 70000]"), index: 0, item: -1,
			path: "spec.ingress[0].destination.ports[1]", msg: "port 70000 out of range 0-65535"},
		{name: "invalid port string", in: gnp("action: Allow\nprotocol: TCP\ndestination:\n  ports: [80-90]"), index: 0, item: -1,
			path: "spec.ingress[0].destination.ports[0]", msg: `a "min:max" range or a name`},
		{name: "invalid port range", in: gnp("action: Allow\nprotocol: TCP\ndestination:\n  ports: ['90:80']"), index: 0, item: -1,
			path: "spec.ingress[0].destination.ports[0]", msg: "min must not be greater than max"},
		{name: "port without tcp or udp", in: gnp("action: Allow\nprotocol: ICMP\ndestination:\n  ports: [80]"), index: 0, item: -1,
			path: "spec.ingress[0].destination.ports", msg: "ports are only allowed when protocol is TCP, UDP or SCTP (protocol is ICMP)"},
		{name: "protocol number out of range", in: gnp("action: Allow\nprotocol: 300"), index: 0, item: -1, path: "spec.ingress[0].protocol", msg: "out of range 1-255"},
		{name: "as number bad", in: "apiVersion: calyx.dev/v1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 10.0.0.1, asNumber: 1.5}\n", index: 0, item: -1,
			path: "spec.asNumber", msg: "AS number"},
		{name: "validation errors all listed", in: "apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: Pool_A}\nspec: {cidr: 10.0.0.1/16, ipipMode: Sometimes}\n",
			index: 0, item: -1, path: "metadata.name",
			text: `document 1 (IPPool "Pool_A"): metadata.name: "Pool_A" must be lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit; spec.cidr: 10.0.0.1/16 has host bits set; did you mean 10.0.0.0/16?; spec.ipipMode: "Sometimes": must be one of Never, Always, CrossSubnet`},
		{name: "list item error", in: "apiVersion: calyx.dev/v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(goodPool), "\n", "\n  ") +
			"\n- apiVersion: calyx.dev/v1\n  kind: IPPool\n  metadata: {name: pool-b}\n  spec: {cidr: 10.1.0.0/16, blockSize: 12}\n",
			index: 0, item: 1, path: "spec.blockSize", msg: "must be 20-32", text: `document 1, items[1] (IPPool "pool-b"): spec.blockSize:`},
		{name: "list items not a list", in: "apiVersion: calyx.dev/v1\nkind: List\nitems: {a: b}\n", index: 0, item: -1, path: "items", msg: "expected a list of resources"},
		{name: "list unknown field", in: "apiVersion: calyx.dev/v1\nkind: List\nitem: []\n", index: 0, item: -1, path: "item", msg: "unknown field"},
		{name: "typed list kind mismatch", in: "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- kind: Profile\n  metadata: {name: a}\n", index: 0, item: 0,
			path: "kind", msg: `"Profile" in a IPPoolList: expected "IPPool"`},
		{name: "bare list item error", in: "- " + strings.ReplaceAll(strings.TrimSpace(goodPool), "\n", "\n  ") + "\n- kind: IPPool\n", index: 0, item: 1, path: "apiVersion", msg: "must be set"},
		{name: "felix field not supported", in: "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec:\n  bpfEnabled: true\n  ipipEnabled: true\n",
			index: 0, item: -1, path: "spec.bpfEnabled", msg: "FelixConfiguration field not supported by Calyx",
			text: `document 1 (FelixConfiguration "default"): spec.bpfEnabled: FelixConfiguration field not supported by Calyx; spec.ipipEnabled: FelixConfiguration field not supported by Calyx`},
		{name: "felix field not supported, calyx apiVersion", in: "apiVersion: calyx.dev/v1\nkind: NodeConfiguration\nmetadata: {name: default}\nspec: {iptablesBackend: nft}\n",
			index: 0, item: -1, path: "spec.iptablesBackend", msg: "FelixConfiguration field not supported by Calyx"},
		{name: "felix typo", in: "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {logSeverityScren: Info}\n",
			index: 0, item: -1, path: "spec.logSeverityScren", msg: `did you mean "logSeverityScreen"?`},
		{name: "felix value checked", in: "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {vxlanVNI: 0}\n",
			index: 0, item: -1, path: "spec.vxlanVNI", msg: "must be 1-16777215"},
		{name: "calico-only pool field", in: "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/16, ipip: {enabled: true}}\n",
			index: 0, item: -1, path: "spec.ipip", msg: "Calico IPPool field not supported by Calyx"},
		{name: "calico-only peer field", in: "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: a}\nspec: {peerIP: 10.0.0.1, asNumber: 1, password: {secretKeyRef: {name: x}}}\n",
			index: 0, item: -1, path: "spec.password", msg: "Calico BGPPeer field not supported by Calyx"},
		{name: "kubernetes metadata field", in: "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a, generation: 2}\nspec: {cidr: 10.0.0.0/16}\n",
			index: 0, item: -1, path: "metadata.generation", msg: "Kubernetes metadata field not supported by Calyx"},
		{name: "v3 endpoint in another namespace", in: "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: a, namespace: prod}\n",
			index: 0, item: -1, path: "metadata.namespace", msg: `"prod": must be empty`},
		{name: "calyx endpoint with namespace default", in: "apiVersion: calyx.dev/v1\nkind: WorkloadEndpoint\nmetadata: {name: a, namespace: default}\n",
			index: 0, item: -1, path: "metadata.namespace", msg: "must be empty"},
		{name: "v3 pool with namespace", in: "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a, namespace: default}\nspec: {cidr: 10.0.0.0/16}\n",
			index: 0, item: -1, path: "metadata.namespace", msg: "must be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error; decoded %d resources", len(rs))
			}
			if rs != nil {
				t.Errorf("resources returned with an error: %v", rs)
			}
			de, ok := errors.AsType[*DocError](err)
			if !ok {
				t.Fatalf("error is %T, want *DocError: %v", err, err)
			}
			if de.Index != tc.index || de.Item != tc.item {
				t.Errorf("Index, Item = %d, %d; want %d, %d (%v)", de.Index, de.Item, tc.index, tc.item, err)
			}
			found := false
			fields := de.Fields
			if len(fields) == 0 {
				fields = []FieldError{{Path: de.Path, Msg: de.Msg}}
			}
			for _, f := range fields {
				if f.Path == tc.path && strings.Contains(f.Msg, tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error at %q containing %q in: %v", tc.path, tc.msg, err)
			}
			if len(de.Fields) > 0 && (de.Path != de.Fields[0].Path || de.Msg != de.Fields[0].Msg) {
				t.Errorf("Path/Msg %q/%q are not Fields[0] %v", de.Path, de.Msg, de.Fields[0])
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Error() = %q, want it to contain %q", err.Error(), tc.text)
			}
		})
	}
}

func TestDecodeFileErrorNamesFile(t *testing.T) {
	in := goodPool + "---\n" + strings.Replace(goodPool, "10.0.0.0/16", "10.0.0.0/33", 1)
	_, err := DecodeFile("pools.yaml", []byte(in))
	want := `pools.yaml: document 2 (IPPool "pool-a"): spec.cidr: "10.0.0.0/33" is not a valid CIDR`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
	de, _ := errors.AsType[*DocError](err)
	if de.File != "pools.yaml" || de.Line != 8 {
		t.Errorf("File, Line = %q, %d; want pools.yaml, 8", de.File, de.Line)
	}
	if !IsInvalid(err) {
		t.Errorf("IsInvalid(%v) = false, want true for a validation failure", err)
	}
}

func TestDecodeStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		names []string
	}{
		{name: "empty", in: ""},
		{name: "comments and separators only", in: "# nothing\n---\n\n---\n# more\n...\n"},
		{name: "leading separator and crlf", in: strings.ReplaceAll("---\n"+goodPool+"---\n", "\n", "\r\n"), names: []string{"pool-a"}},
		{name: "byte order mark", in: "\xef\xbb\xbf" + goodPool, names: []string{"pool-a"}},
		{name: "separator with content", in: "--- {apiVersion: calyx.dev/v1, kind: Profile, metadata: {name: x}}\n--- # c\n" + goodPool, names: []string{"x", "pool-a"}},
		{name: "null document", in: "null\n---\n" + goodPool, names: []string{"pool-a"}},
		{name: "json object", in: `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "p"}}`, names: []string{"p"}},
		{name: "json stream", in: `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "p"}}` + "\n" +
			`{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "q"}}`, names: []string{"p", "q"}},
		{name: "json array", in: `[{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "p"}}]`, names: []string{"p"}},
		{name: "kubernetes v1 list", in: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: calyx.dev/v1\n  kind: Profile\n  metadata: {name: p}\n", names: []string{"p"}},
		{name: "calico typed list inherits kind and apiVersion", in: "apiVersion: projectcalico.org/v3\nkind: ProfileList\nmetadata: {resourceVersion: '1'}\nitems:\n- metadata: {name: p}\n- metadata: {name: q}\n",
			names: []string{"p", "q"}},
		{name: "empty list", in: "apiVersion: calyx.dev/v1\nkind: List\nitems: []\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rs {
				names = append(names, r.GetObjectMeta().Name)
			}
			if diff := cmp.Diff(tc.names, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeCalicoExamples checks what the Calico-shaped testdata turns
// into.
func TestDecodeCalicoExamples(t *testing.T) {
	byKey := map[string]Resource{}
	for _, r := range loadTestdata(t) {
		if tm := *r.GetTypeMeta(); tm.APIVersion != APIVersion || tm.Kind != r.GetKind() {
			t.Errorf("%s %s: TypeMeta = %+v, want calyx.dev/v1", r.GetKind(), r.GetObjectMeta().Name, tm)
		}
		byKey[r.GetKind()+"/"+r.GetObjectMeta().Name] = r
	}
	for _, k := range []string{
		"IPPool/my.ippool-1", "IPPool/ipv6-pool", "IPPool/default-ipv4-ippool", "Profile/dev-apps",
		"GlobalNetworkPolicy/allow-tcp-6379", "GlobalNetworkPolicy/every-rule-field", "GlobalNetworkPolicy/untracked-ingress",
		"GlobalNetworkPolicy/pre-dnat-deny", "GlobalNetworkSet/a-name-for-the-set", "HostEndpoint/some.name", "BGPPeer/some.name",
		"BGPPeer/peer-with-route-reflectors", "BGPPeer/tor-v6", "BGPConfiguration/default", "BGPConfiguration/node.rack1-host1",
		"NodeConfiguration/default", "NodeConfiguration/node.myhost", "WorkloadEndpoint/node1-cni-1337495556942031415926535-eth0",
		"Node/node-hostname", "IPAMConfiguration/default",
	} {
		if byKey[k] == nil {
			t.Errorf("testdata has no %s", k)
		}
	}
	pool := byKey["IPPool/my.ippool-1"].(*IPPool)
	if pool.Spec.BlockSize != 26 || pool.Spec.VXLANMode != EncapNever || pool.Spec.IPIPMode != EncapCrossSubnet {
		t.Errorf("pool defaults: %+v", pool.Spec)
	}
	listed := byKey["IPPool/default-ipv4-ippool"].(*IPPool)
	if m := listed.Metadata; m.ResourceVersion != "812" || m.UID == "" || m.CreationTimestamp != "2024-03-01T10:00:00Z" {
		t.Errorf("server-side metadata not kept: %+v", m)
	}
	wep := byKey["WorkloadEndpoint/node1-cni-1337495556942031415926535-eth0"].(*WorkloadEndpoint)
	if wep.Metadata.Namespace != "" || wep.Metadata.Labels["projectcalico.org/orchestrator"] != "cni" {
		t.Errorf("endpoint metadata: %+v", wep.Metadata)
	}
	felix := byKey["NodeConfiguration/default"].(*NodeConfiguration)
	if felix.Spec.VXLANVNI == nil || *felix.Spec.VXLANVNI != 4096 || felix.Spec.FailsafeOutboundHostPorts == nil ||
		len(*felix.Spec.FailsafeOutboundHostPorts) != 0 || len(*felix.Spec.FailsafeInboundHostPorts) != 3 {
		t.Errorf("felix configuration: %+v", felix.Spec)
	}
	bgp := byKey["BGPConfiguration/node.rack1-host1"].(*BGPConfiguration)
	if bgp.Spec.LogSeverityScreen != "Debug" || bgp.Spec.ASNumber != nil {
		t.Errorf("per-node BGP configuration: %+v", bgp.Spec)
	}
	peer := byKey["BGPPeer/tor-v6"].(*BGPPeer)
	if peer.Spec.ASNumber != 1<<16+10 {
		t.Errorf("asdot AS number 1.10 = %d, want %d", peer.Spec.ASNumber, 1<<16+10)
	}
	gnp := byKey["GlobalNetworkPolicy/every-rule-field"].(*GlobalNetworkPolicy)
	if got := gnp.Spec.Ingress[0].Source.Nets[1]; got != "192.168.1.7/32" {
		t.Errorf("bare IP in nets = %q, want 192.168.1.7/32", got)
	}
	if diff := cmp.Diff([]string{"Ingress", "Egress"}, gnp.Spec.Types); diff != "" {
		t.Errorf("inferred types (-want +got):\n%s", diff)
	}
	if node := byKey["Node/node-hostname"].(*Node); node.Spec.BGP.IPv4Address != "10.244.0.1/24" {
		t.Errorf("node: %+v", node.Spec.BGP)
	}
}
