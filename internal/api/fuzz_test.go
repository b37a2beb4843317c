package api

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that its errors are
// *DocErrors with a message, and that whatever it accepts encodes (as JSON
// and as YAML) to output that decodes back to the same resources.
func FuzzDecode(f *testing.F) {
	var seeds []string
	for _, pattern := range []string{"../../examples/*.yaml", "../../examples/calico-v3/*.yaml", "testdata/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, string(b))
		}
	}
	if len(seeds) < 10 {
		f.Fatalf("found %d seed files, want the examples and testdata", len(seeds))
	}
	seeds = append(seeds,
		goodPool, goodPool+"---\n"+goodPool, profileJSON("a")+"\n---\n"+profileJSON("b"), profileJSON("a")+profileJSON("b"),
		"["+profileJSON("a")+"]", `{"apiVersion": "calyx.dev/v1", "kind": "List", "items": [`+profileJSON("a")+`]}`,
		"--- {apiVersion: calyx.dev/v1, kind: Profile, metadata: {name: x}}\n", "a: &x [1]\nb: *x\n", "<<: {a: 1}\n",
		"a: &a {k: v}\nb: &b {<<: [*a, *a], j: w}\nc: {<<: [*b, *b, *a]}\n",
		strings.Repeat("[", 70)+strings.Repeat("]", 70), "\xef\xbb\xbf"+goodPool, "null\n", "",
	)
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data)
		if err != nil {
			var de *DocError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is a %T, want *DocError", err, err)
			}
			if de.Index < 0 || err.Error() == "" || (de.Msg == "" && len(de.Fields) == 0) {
				t.Fatalf("malformed error %#v", de)
			}
			return
		}
		j, err := EncodeJSON(rs)
		if err != nil {
			t.Fatalf("encoding %d accepted resources as JSON: %v", len(rs), err)
		}
		y, err := EncodeYAML(rs)
		if err != nil {
			t.Fatalf("encoding %d accepted resources as YAML: %v", len(rs), err)
		}
		for _, enc := range [][]byte{j, y} {
			again, err := Decode(enc)
			if err != nil {
				t.Fatalf("output of an accepted input does not decode: %v\ninput:\n%s\noutput:\n%s", err, data, enc)
			}
			j2, err := EncodeJSON(again)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(j, j2) {
				t.Fatalf("round trip changed the resources:\nfirst:\n%s\nafter:\n%s", j, j2)
			}
		}
	})
}
