package api

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func profileJSON(name string) string {
	return `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "` + name + `"}}`
}

func profileYAML(name string) string {
	return "apiVersion: calyx.dev/v1\nkind: Profile\nmetadata:\n  name: " + name + "\n"
}

func names(rs []Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetObjectMeta().Name)
	}
	return out
}

// TestDecodeJSONDocumentsInYAMLStream checks that JSON documents may be
// separated by "---" lines, as in a YAML stream, as well as form a plain
// JSON stream.
func TestDecodeJSONDocumentsInYAMLStream(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"json separated by ---", profileJSON("a") + "\n---\n" + profileJSON("b"), []string{"a", "b"}},
		{"json, separator, json stream", profileJSON("a") + "\n---\n" + profileJSON("b") + "\n---\n" + profileJSON("c") + "\n", []string{"a", "b", "c"}},
		{"json then yaml", profileJSON("a") + "\n---\n" + profileYAML("b"), []string{"a", "b"}},
		{"yaml then json", profileYAML("a") + "---\n" + profileJSON("b") + "\n", []string{"a", "b"}},
		{"leading separator", "---\n" + profileJSON("a") + "\n---\n" + profileJSON("b"), []string{"a", "b"}},
		{"json stream without separator", profileJSON("a") + profileJSON("b"), []string{"a", "b"}},
		{"json stream by lines", profileJSON("a") + "\n" + profileJSON("b") + "\n", []string{"a", "b"}},
		{"json list then separator", "[" + profileJSON("a") + "]\n--- # more\n" + profileJSON("b"), []string{"a", "b"}},
		{"json kind List", `{"apiVersion": "calyx.dev/v1", "kind": "List", "items": [` + profileJSON("a") + `, ` + profileJSON("b") + `]}`, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(rs)); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeStreamErrorNumbering checks that errors in a mixed stream name
// the right document, line and field.
func TestDecodeStreamErrorNumbering(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		index      int
		line       int
		path, text string
	}{
		{name: "bad field in json after separator", in: profileJSON("a") + "\n---\n" + `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "b"}, "spce": {}}`,
			index: 1, line: 3, path: "spce", text: `f.json: document 2 (Profile "b"): spce: unknown field`},
		{name: "duplicate key in json after separator", in: profileJSON("a") + "\n---\n" + `{"kind": "Profile", "kind": "Profile"}`,
			index: 1, line: 3, text: `key "kind" already set`},
		{name: "third document", in: profileYAML("a") + "---\n" + profileJSON("b") + "\n---\n\n" + profileJSON("B"),
			index: 2, line: 9, path: "metadata.name", text: "f.json: document 3"},
		{name: "duplicate key in json stream", in: profileJSON("a") + "\n" + `{"kind": "Profile", "metadata": {"name": "x", "name": "y"}}`,
			index: 1, line: 2, path: "metadata.name", text: "key given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFile("f.json", []byte(tc.in))
			de, ok := errors.AsType[*DocError](err)
			if !ok {
				t.Fatalf("error = %v, want a *DocError", err)
			}
			if de.Index != tc.index || de.Line != tc.line || de.Path != tc.path || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("got index %d, line %d, path %q, %q; want %d, %d, %q, containing %q", de.Index, de.Line, de.Path, err, tc.index, tc.line, tc.path, tc.text)
			}
		})
	}
}

// TestDecodeDepthLimit checks that deeply nested input is refused at
// MaxDepth with an error naming the limit, before it costs memory in
// proportion to its depth.
func TestDecodeDepthLimit(t *testing.T) {
	const n = 100_000
	deepJSON := strings.Repeat("[", n) + strings.Repeat("]", n)
	for _, tc := range []struct{ name, in string }{
		{"json lists", deepJSON},
		{"json objects", strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)},
		{"json after separator", profileJSON("a") + "\n---\n" + deepJSON},
		{"yaml flow", "# flow\n" + strings.Repeat("[", 1000) + strings.Repeat("]", 1000)},
		{"yaml block", "a:\n" + func() string {
			var b strings.Builder
			for i := range 100 {
				b.WriteString(strings.Repeat(" ", i+1) + "a:\n")
			}
			return b.String()
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), "nested deeper than the limit of 64 levels") {
				t.Fatalf("error = %v, want the depth limit", err)
			}
		})
	}
	// Refusing a 100,000-deep value must cost little: the old decoder
	// made a frame with a copy of the growing path per level (tens of
	// millions of bytes and hundreds of thousands of allocations).
	in := []byte(deepJSON)
	allocs := testing.AllocsPerRun(3, func() { _, _ = Decode(in) })
	if allocs > 2000 {
		t.Errorf("decoding %d nested lists made %.0f allocations, want at most 2000", n, allocs)
	}
}

// TestDecodeAliasBomb checks that YAML aliases cannot expand a small
// document into a huge value.
func TestDecodeAliasBomb(t *testing.T) {
	in := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		name := string(rune('b' + i))
		in += name + ": &" + name + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+", ", 10), ", ") + "]\n"
	}
	_, err := Decode([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 262144 values") {
		t.Fatalf("error = %v, want the value limit", err)
	}
}

// endless is a reader of an unbounded stream: prefix, then doc(i) for
// i = 0, 1, 2, ... It counts the bytes read from it.
type endless struct {
	doc  func(i int) string
	i    int
	buf  []byte
	read int
}

func (e *endless) Read(p []byte) (int, error) {
	for len(e.buf) == 0 {
		e.buf = []byte(e.doc(e.i))
		e.i++
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	e.read += n
	return n, nil
}

// TestDecoderStreams checks that the Decoder reads document by document:
// it stops at the first bad document, and at a document over
// MaxDocumentBytes, having read only a little more than that.
func TestDecoderStreams(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format+" bad document", func(t *testing.T) {
			src := &endless{doc: func(i int) string {
				name := fmt.Sprintf("p-%d", i)
				if i == 3 {
					name = "Bad_Name"
				}
				if format == "json" {
					return profileJSON(name) + "\n"
				}
				return "---\n" + profileYAML(name)
			}}
			d := NewDecoder("<stdin>", src)
			var got []string
			var err error
			for err == nil {
				var rs []Resource
				rs, err = d.Next()
				got = append(got, names(rs)...)
			}
			de, ok := errors.AsType[*DocError](err)
			if !ok || de.Index != 3 || de.Path != "metadata.name" || de.File != "<stdin>" {
				t.Fatalf("error = %v, want document 4's metadata.name", err)
			}
			if diff := cmp.Diff([]string{"p-0", "p-1", "p-2"}, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if src.read > 64<<10 {
				t.Errorf("read %d bytes of input to find the error in document 4", src.read)
			}
			if _, again := d.Next(); !errors.Is(again, err) {
				t.Errorf("Next after an error = %v, want the same error", again)
			}
		})
		t.Run(format+" document too large", func(t *testing.T) {
			src := &endless{doc: func(i int) string {
				switch {
				case i == 0 && format == "json":
					return profileJSON("a") + "\n" + `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "b", "labels": {"a": "`
				case i == 0:
					return profileYAML("a") + "---\n" + profileYAML("b") + "  labels:\n    a: "
				}
				return strings.Repeat("x", 4096)
			}}
			d := NewDecoder("", src)
			rs, err := d.Next()
			if err != nil || len(rs) != 1 {
				t.Fatalf("first document: %v, %v", rs, err)
			}
			_, err = d.Next()
			de, ok := errors.AsType[*DocError](err)
			if !ok || de.Index != 1 || !strings.Contains(err.Error(), "document 2: larger than the limit of 1048576 bytes (1 MiB)") {
				t.Fatalf("error = %v, want document 2 over the size limit", err)
			}
			if src.read > 5*MaxDocumentBytes {
				t.Errorf("read %d bytes before refusing a document over %d", src.read, MaxDocumentBytes)
			}
		})
	}
	t.Run("json value just over the limit", func(t *testing.T) {
		in := `{"apiVersion": "calyx.dev/v1", "kind": "Profile", "metadata": {"name": "b", "labels": {"a": "` + strings.Repeat("x", MaxDocumentBytes) + `"}}}`
		_, err := Decode([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "larger than the limit") {
			t.Fatalf("error = %v, want the size limit", err)
		}
	})
}

var _ io.Reader = (*endless)(nil)
