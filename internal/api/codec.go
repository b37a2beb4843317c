package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The codec reads what operators write and prints what calyxctl get shows.
//
// Input is a stream of YAML documents separated by "---" lines, or of JSON
// values. A document is one resource, or a list of resources ("kind: List"
// with items; Calico's "kind: IPPoolList" and a bare top-level list are
// read the same way). Empty documents are skipped. Decoding is strict:
// an unknown field, a wrong type, a duplicate key, a missing or unknown
// apiVersion or kind are all errors naming the field's path. Every decoded
// resource then gets SetDefaults and Validate, so what Decode returns is
// ready to store.
//
// Output (EncodeYAML, EncodeJSON) is calyx.dev/v1; one resource is printed
// as itself, several as a List. Output decodes back to equal resources.

// DocError is an error in one document of a decoded stream. Error() counts
// documents from 1, as a person reading the file does: Index 1 prints as
// "document 2".
type DocError struct {
	File  string // file name, set by DecodeFile
	Index int    // 0-based index of the document in the stream (empty documents are not counted)
	Item  int    // 0-based index of the resource in the document's list items, or -1
	Line  int    // 1-based line of the input where the document starts (0 if unknown)
	Kind  string // kind as written in the document, if known
	Name  string // metadata.name, if known
	Path  string // path of the (first) bad field, e.g. "spec.cidr"; "" for the document as a whole
	Msg   string // what is wrong and what was expected
	// Fields lists every bad field of the resource; Fields[0] is Path and
	// Msg. It is empty when the document could not be read at all.
	Fields []FieldError
	// Err is the underlying error, e.g. a *ValidationError, for errors.As.
	Err error
}

func (e *DocError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	fmt.Fprintf(&b, "document %d", e.Index+1)
	if e.Item >= 0 {
		fmt.Fprintf(&b, ", items[%d]", e.Item)
	}
	if e.Kind != "" {
		b.WriteString(" (" + e.Kind)
		if e.Name != "" {
			b.WriteString(" " + strconv.Quote(e.Name))
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	if len(e.Fields) == 0 {
		b.WriteString(FieldError{Path: e.Path, Msg: e.Msg}.Error())
		return b.String()
	}
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *DocError) Unwrap() error { return e.Err }

// Decode reads every resource in data (YAML documents or JSON values),
// applying SetDefaults and Validate to each. It stops at the first
// document with an error and returns it as a *DocError listing all of that
// document's bad fields.
func Decode(data []byte) ([]Resource, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []rawDoc
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		var err error
		if docs, err = splitJSON(data); err != nil {
			return nil, err
		}
	} else {
		docs = splitYAML(data)
	}
	var out []Resource
	for i, d := range docs {
		rs, err := d.decode(i)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// DecodeFile is Decode for the contents of a named file; its errors start
// with the file name, e.g.
//
//	pools.yaml: document 2 (IPPool "pool-a"): spec.cidr: "10.0.0.0/33" is not a valid CIDR ...
func DecodeFile(path string, data []byte) ([]Resource, error) {
	rs, err := Decode(data)
	if de, ok := errors.AsType[*DocError](err); ok {
		de.File = path
	}
	return rs, err
}

// rawDoc is one document of the stream, not yet decoded.
type rawDoc struct {
	line   int    // first line in the input
	yaml   []byte // YAML text, if the input was YAML
	value  any    // parsed value, if the input was JSON
	parsed bool
}

var documentSeparatorRE = regexp.MustCompile(`^(---|\.\.\.)([ \t].*)?$`)

// splitYAML splits a YAML stream at its "---" (and "...") lines, dropping
// documents that hold nothing but blank lines and comments.
func splitYAML(data []byte) []rawDoc {
	var docs []rawDoc
	var cur []string
	start := 1
	flush := func() {
		empty := true
		for _, l := range cur {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, rawDoc{line: start, yaml: []byte(strings.Join(cur, ""))})
		}
		cur = nil
	}
	for i, l := range strings.SplitAfter(string(data), "\n") {
		m := documentSeparatorRE.FindStringSubmatch(strings.TrimRight(l, "\r\n"))
		if m == nil {
			cur = append(cur, l)
			continue
		}
		flush()
		start = i + 1
		if m[1] == "---" && strings.TrimSpace(m[2]) != "" {
			// "--- {kind: ...}": the document starts on this line. Blank
			// out the marker so that columns and line numbers still match.
			cur = append(cur, "   "+l[3:])
		} else {
			start = i + 2
		}
	}
	flush()
	return docs
}

// splitJSON reads a stream of JSON values (usually just one).
func splitJSON(data []byte) ([]rawDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var docs []rawDoc
	for {
		start := int(dec.InputOffset())
		for start < len(data) && strings.IndexByte(" \t\r\n", data[start]) >= 0 {
			start++
		}
		if start == len(data) {
			return docs, nil
		}
		v, err := readJSON(dec, "")
		if err != nil {
			de := &DocError{Index: len(docs), Item: -1, Line: lineOf(data, start), Msg: jsonErrorMessage(data, err)}
			if dup, ok := errors.AsType[*duplicateKeyError](err); ok {
				de.Path, de.Msg = dup.path, "key given twice"
			}
			return nil, de
		}
		docs = append(docs, rawDoc{line: lineOf(data, start), value: v, parsed: true})
	}
}

// duplicateKeyError is a JSON object with a key given twice.
type duplicateKeyError struct{ path string }

func (e *duplicateKeyError) Error() string { return e.path + ": key given twice" }

// jsonErrorMessage describes a JSON syntax error with its line and column.
func jsonErrorMessage(data []byte, err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		// Offset points at, or just before whitespace preceding, the
		// offending byte.
		off := int(min(max(se.Offset, 0), int64(len(data))))
		for off < len(data)-1 && strings.IndexByte(" \t\r\n", data[off]) >= 0 {
			off++
		}
		line := lineOf(data, off)
		col := off - bytes.LastIndexByte(data[:off], '\n')
		return fmt.Sprintf("malformed JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "malformed JSON: unexpected end of input"
	}
	return "malformed JSON: " + err.Error()
}

// lineOf returns the 1-based line of byte offset off.
func lineOf(data []byte, off int) int {
	return bytes.Count(data[:min(off, len(data))], []byte("\n")) + 1
}

// readJSON reads one JSON value token by token, so that a key given twice
// in one object is an error rather than silently last-wins.
func readJSON(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		m := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			if _, dup := m[k]; dup {
				return nil, &duplicateKeyError{path: pkey(path, k)}
			}
			if m[k], err = readJSON(dec, pkey(path, k)); err != nil {
				return nil, err
			}
		}
		_, err := dec.Token() // '}'
		return m, err
	case json.Delim('['):
		l := []any{}
		for i := 0; dec.More(); i++ {
			v, err := readJSON(dec, pindex(path, i))
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token() // ']'
		return l, err
	default:
		return tok, nil
	}
}
