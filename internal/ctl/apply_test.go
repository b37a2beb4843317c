package ctl

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

const applyInput = `apiVersion: calyx.dev/v1
kind: Profile
metadata:
  name: net-a
  labels: {team: a}
spec:
  ingress:
  - action: Allow
---
apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.66.0.0/16}
---
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: allow-web}
spec:
  selector: role == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80, 443]}
`

// TestApplyUnchanged checks that apply leaves resources equal to their
// stored copy alone (same resourceVersion, nothing written), says so as
// kubectl does, and that get -o yaml|json applies back unchanged.
func TestApplyUnchanged(t *testing.T) {
	e := testnet.StartEtcd(t)
	ep := testnet.ClientFlags(e)
	c := testnet.NewClient(t, e)
	getAll := func() string {
		t.Helper()
		return mustRun(t, ep, "", "get", "profiles", "-o", "yaml") + mustRun(t, ep, "", "get", "pools", "-o", "yaml") +
			mustRun(t, ep, "", "get", "gnp", "-o", "yaml")
	}

	out := mustRun(t, ep, applyInput, "apply", "-f", "-")
	if want := "profile/net-a created\nippool/pool-a created\nglobalnetworkpolicy/allow-web created\n"; out != want {
		t.Errorf("first apply printed %q, want %q", out, want)
	}
	before := getAll()
	rev := etcdRevision(t, c)

	out = mustRun(t, ep, applyInput, "apply", "-f", "-")
	if want := "profile/net-a unchanged\nippool/pool-a unchanged\nglobalnetworkpolicy/allow-web unchanged\n"; out != want {
		t.Errorf("second apply printed %q, want %q", out, want)
	}
	if got := etcdRevision(t, c); got != rev {
		t.Errorf("applying unchanged resources moved the etcd revision from %d to %d", rev, got)
	}
	if after := getAll(); after != before {
		t.Errorf("applying unchanged resources changed them:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	for _, format := range []string{"yaml", "json"} {
		for _, kind := range []string{"profiles", "pools", "gnp"} {
			got := mustRun(t, ep, "", "get", kind, "-o", format)
			out := mustRun(t, ep, got, "apply", "-f", "-")
			if !strings.HasSuffix(out, " unchanged\n") || strings.Count(out, "\n") != strings.Count(out, " unchanged\n") {
				t.Errorf("get %s -o %s | apply printed %q, want only unchanged", kind, format, out)
			}
		}
	}
	if got := etcdRevision(t, c); got != rev {
		t.Errorf("get | apply moved the etcd revision from %d to %d", rev, got)
	}

	changed := strings.Replace(applyInput, "team: a", "team: b", 1)
	out = mustRun(t, ep, changed, "apply", "-f", "-")
	if want := "profile/net-a configured\nippool/pool-a unchanged\nglobalnetworkpolicy/allow-web unchanged\n"; out != want {
		t.Errorf("apply of one change printed %q, want %q", out, want)
	}
	if got := mustRun(t, ep, "", "get", "profile", "net-a", "-o", "yaml"); !strings.Contains(got, "team: b") {
		t.Errorf("the changed profile was not written:\n%s", got)
	}
	if got := etcdRevision(t, c); got != rev+1 {
		t.Errorf("apply of one change moved the etcd revision from %d to %d, want one write", rev, got)
	}
}

// etcdRevision reads the datastore's current revision.
func etcdRevision(t *testing.T, c *datastore.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	kind, _ := api.LookupKind(api.KindProfile)
	_, rev, err := c.List(ctx, kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// countingReader is an endless stream of valid documents that counts the
// documents it has handed out.
type countingReader struct {
	docs int
	buf  bytes.Buffer
}

func (c *countingReader) Read(p []byte) (int, error) {
	for c.buf.Len() < len(p) {
		fmt.Fprintf(&c.buf, "---\napiVersion: calyx.dev/v1\nkind: Profile\nmetadata: {name: p-%d}\nspec: {}\n", c.docs)
		c.docs++
	}
	return c.buf.Read(p)
}

// TestApplyStopsAtBatchLimit checks that an input with more resources than
// one transaction holds is refused after reading little more than that
// many, without reading (or holding) the rest.
func TestApplyStopsAtBatchLimit(t *testing.T) {
	src := &countingReader{}
	var out, errb bytes.Buffer
	cmd := NewCommand(Options{In: src, Out: &out, Err: &errb, Getenv: func(string) string { return "" },
		ReadFile: func(string) ([]byte, error) { return nil, fmt.Errorf("no config file") }})
	cmd.SetArgs([]string{"--etcd-endpoints", "http://127.0.0.1:9", "apply", "-f", "-"})
	err := cmd.ExecuteContext(t.Context())
	want := `<stdin>: document 2049 (Profile "p-2048"): more than 2048 resources`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "split the input") {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
	if src.docs > 2048+200 {
		t.Errorf("read %d documents to refuse an input over 2048", src.docs)
	}
}
