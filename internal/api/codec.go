package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The codec reads what operators write and prints what calyxctl get shows.
//
// Input is a stream of YAML documents separated by "---" lines, or of JSON
// values (which may also be separated by "---" lines). A document is one resource, or a list of resources ("kind: List"
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

// Limits on what the decoder reads. They are far above what a resource
// needs and bound the memory and time one document can cost.
const (
	// MaxDocumentBytes is the largest document (one YAML document or JSON
	// value) the decoder reads.
	MaxDocumentBytes = 1 << 20
	// MaxDepth is the deepest nesting of mappings and lists a document may
	// have; resources need fewer than ten levels.
	MaxDepth = 64
	// maxDocumentValues bounds the values one YAML document may hold,
	// counting those an alias repeats (a few kilobytes of aliases can
	// otherwise expand to billions).
	maxDocumentValues = 1 << 18
)

// Decode reads every resource in data (YAML documents or JSON values),
// applying SetDefaults and Validate to each. It stops at the first
// document with an error and returns it as a *DocError listing all of that
// document's bad fields.
func Decode(data []byte) ([]Resource, error) {
	return DecodeFile("", data)
}

// DecodeFile is Decode for the contents of a named file; its errors start
// with the file name, e.g.
//
//	pools.yaml: document 2 (IPPool "pool-a"): spec.cidr: "10.0.0.0/33" is not a valid CIDR ...
func DecodeFile(path string, data []byte) ([]Resource, error) {
	d := NewDecoder(path, bytes.NewReader(data))
	var out []Resource
	for {
		rs, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
}

// Decoder reads resources from a stream one document at a time, so that a
// caller can stop at the first bad document or at a limit of its own
// without holding the rest of the input. Input that starts with '{' or '['
// is read as a stream of JSON values; a "---" line in it, or any other
// input, makes the rest a YAML stream (whose documents may be JSON too).
type Decoder struct {
	file  string
	src   *source
	br    *bufio.Reader
	state decoderState
	jdec  *json.Decoder
	jbase int64 // input offset at which jdec started reading
	ydec  *yaml.Decoder
	ylast int // lines of input before the YAML stream
	index int // index of the next document
	err   error
}

type decoderState int

const (
	stateStart decoderState = iota
	stateJSON
	stateYAML
)

// NewDecoder returns a Decoder reading r; file, if set, starts its errors.
func NewDecoder(file string, r io.Reader) *Decoder {
	src := &source{r: r, record: true, baseLine: 1, limit: 4 * MaxDocumentBytes}
	return &Decoder{file: file, src: src, br: bufio.NewReader(src)}
}

// Next returns the resources of the next document that has any, defaulted
// and validated, or io.EOF after the last. An error is a *DocError (or a
// read error of the underlying reader); after an error, Next returns it
// again.
func (d *Decoder) Next() ([]Resource, error) {
	for d.err == nil {
		v, line, err := d.readDoc()
		if err != nil {
			d.fail(err)
			break
		}
		if v == nil {
			continue // an empty document
		}
		rs, err := rawDoc{line: line, value: v}.decode(d.index)
		d.index++
		if err != nil {
			d.fail(err)
			break
		}
		if len(rs) > 0 {
			return rs, nil
		}
	}
	return nil, d.err
}

func (d *Decoder) fail(err error) {
	if de, ok := errors.AsType[*DocError](err); ok {
		de.File = d.file
	}
	d.err = err
}

// docErr is an error about the document being read as a whole.
func (d *Decoder) docErr(line int, path, format string, args ...any) *DocError {
	return &DocError{Index: d.index, Item: -1, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// tooLarge is the error for a document over MaxDocumentBytes.
func (d *Decoder) tooLarge(line int) *DocError {
	return d.docErr(line, "", "larger than the limit of %d bytes (1 MiB) for one document", MaxDocumentBytes)
}

// readDoc reads the next document's value (nil for an empty one) and its
// first line.
func (d *Decoder) readDoc() (any, int, error) {
	switch d.state {
	case stateStart:
		if err := d.start(); err != nil {
			return nil, 0, err
		}
		return d.readDoc()
	case stateJSON:
		return d.readJSONDoc()
	default:
		return d.readYAMLDoc()
	}
}

// start skips a byte-order mark and leading white space to choose between
// a JSON and a YAML stream.
func (d *Decoder) start() error {
	if b, err := d.br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		_, _ = d.br.Discard(3)
	}
	var indent []byte // white space of the current line, given back to YAML
	for {
		c, err := d.br.ReadByte()
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			if d.src.over {
				return d.tooLarge(1)
			}
			name := d.file
			if name == "" {
				name = "the input"
			}
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			indent = append(indent, c)
			if c == '\n' {
				indent = indent[:0]
			}
			continue
		}
		_ = d.br.UnreadByte()
		if c == '{' || c == '[' {
			d.state = stateJSON
			d.jdec = json.NewDecoder(d.br)
			d.jdec.UseNumber()
			d.jbase = d.consumed() // jdec's offsets count from here
			return nil
		}
		d.startYAML(d.consumed()-int64(len(indent)), bytes.NewReader(indent), d.br)
		return nil
	}
}

// consumed is the input offset up to which br has been read.
func (d *Decoder) consumed() int64 { return d.src.off - int64(d.br.Buffered()) }

// startYAML makes the rest of the input, from offset at, a YAML stream.
func (d *Decoder) startYAML(at int64, rs ...io.Reader) {
	d.state = stateYAML
	d.ylast = d.src.lineAt(at) - 1
	d.src.record = false
	d.src.mark(d.src.off)
	d.src.limit = MaxDocumentBytes + 64<<10 // the YAML reader reads little ahead
	d.ydec = yaml.NewDecoder(io.MultiReader(rs...))
}

// readJSONDoc reads one JSON value, or switches to YAML at a "---" line.
func (d *Decoder) readJSONDoc() (any, int, error) {
	more := d.jdec.More() // buffers up to the next non-space byte
	rest, _ := io.ReadAll(d.jdec.Buffered())
	trimmed := bytes.TrimLeft(rest, " \t\r\n")
	at := d.jbase + d.jdec.InputOffset()
	if len(trimmed) == 0 && !more {
		if d.src.over {
			return nil, 0, d.tooLarge(d.src.lineAt(at))
		}
		return nil, 0, io.EOF
	}
	if len(trimmed) > 0 && (trimmed[0] == '-' || trimmed[0] == '.') {
		// A document separator: the rest is a YAML stream.
		d.startYAML(at, bytes.NewReader(rest), d.br)
		return d.readYAMLDoc()
	}
	start := at + int64(len(rest)-len(trimmed))
	line := d.src.lineAt(start)
	d.src.mark(start)
	jr := jsonReader{dec: d.jdec}
	v, err := jr.value(1)
	if err != nil {
		if d.src.over {
			return nil, 0, d.tooLarge(line)
		}
		if de, ok := errors.AsType[*DocError](err); ok {
			de.Index, de.Line = d.index, line
			return nil, 0, de
		}
		if dup, ok := errors.AsType[*duplicateKeyError](err); ok {
			return nil, 0, d.docErr(line, dup.path, "key given twice")
		}
		return nil, 0, d.docErr(line, "", "%s", d.jsonErrorMessage(err))
	}
	if d.jbase+d.jdec.InputOffset()-start > MaxDocumentBytes {
		return nil, 0, d.tooLarge(line)
	}
	return v, line, nil
}

// jsonErrorMessage describes a JSON syntax error with its line and column.
func (d *Decoder) jsonErrorMessage(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		// Offset points at, or just before white space preceding, the
		// offending byte.
		off := d.jbase + se.Offset
		off = d.src.skipSpace(off)
		line, col := d.src.lineCol(off)
		return fmt.Sprintf("malformed JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "malformed JSON: unexpected end of input"
	}
	return "malformed JSON: " + err.Error()
}

// readYAMLDoc reads one YAML document.
func (d *Decoder) readYAMLDoc() (any, int, error) {
	d.src.mark(d.src.off)
	var n yaml.Node
	err := d.ydec.Decode(&n)
	if d.src.over {
		return nil, 0, d.tooLarge(0)
	}
	if errors.Is(err, io.EOF) {
		return nil, 0, io.EOF
	}
	if err != nil {
		return nil, 0, d.docErr(0, "", "%s", yamlErrorMessage(err, d.ylast+1))
	}
	if len(n.Content) == 0 {
		return nil, 0, nil
	}
	root := n.Content[0]
	line := root.Line + d.ylast
	c := yamlConverter{lineBase: d.ylast}
	v, err := c.value(root, 1)
	if err != nil {
		if de, ok := errors.AsType[*DocError](err); ok {
			de.Index, de.Line = d.index, line
			return nil, 0, de
		}
		return nil, 0, d.docErr(line, "", "%s", err.Error())
	}
	return v, line, nil
}

// source reads the input, counting bytes and lines. While record is set it
// keeps the bytes of the current document (for line and column numbers in
// JSON errors); it fails a read that would take the current document past
// limit bytes.
type source struct {
	r        io.Reader
	off      int64  // bytes read from r
	base     int64  // input offset of buf[0], the current document's start
	baseLine int    // line of base
	baseCol  int64  // input offset where base's line starts
	buf      []byte // bytes from base, while record
	record   bool
	limit    int64
	over     bool // a read was refused for limit
}

func (s *source) Read(p []byte) (int, error) {
	room := s.base + s.limit - s.off
	if room <= 0 {
		s.over = true
		return 0, errDocumentTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.off += int64(n)
	if s.record {
		s.buf = append(s.buf, p[:n]...)
	}
	return n, err
}

var errDocumentTooLarge = errors.New("document too large")

// mark starts a new document at input offset off (off >= base).
func (s *source) mark(off int64) {
	if !s.record {
		s.base = off
		return
	}
	k := int(min(off-s.base, int64(len(s.buf))))
	if i := bytes.LastIndexByte(s.buf[:k], '\n'); i >= 0 {
		s.baseLine += bytes.Count(s.buf[:k], []byte("\n"))
		s.baseCol = s.base + int64(i) + 1
	}
	s.buf = s.buf[:copy(s.buf, s.buf[k:])]
	s.base = off
}

// lineAt returns the 1-based line of input offset off (off >= base).
func (s *source) lineAt(off int64) int {
	l, _ := s.lineCol(off)
	return l
}

// lineCol returns the 1-based line and column of input offset off.
func (s *source) lineCol(off int64) (int, int) {
	k := int(min(max(off-s.base, 0), int64(len(s.buf))))
	line := s.baseLine + bytes.Count(s.buf[:k], []byte("\n"))
	lineStart := s.baseCol
	if i := bytes.LastIndexByte(s.buf[:k], '\n'); i >= 0 {
		lineStart = s.base + int64(i) + 1
	}
	return line, int(s.base + int64(k) - lineStart + 1)
}

// skipSpace returns the offset of the first non-space byte at or after off
// among the recorded bytes.
func (s *source) skipSpace(off int64) int64 {
	for k := off - s.base; k >= 0 && k < int64(len(s.buf))-1 && strings.IndexByte(" \t\r\n", s.buf[k]) >= 0; k++ {
		off++
	}
	return off
}

// duplicateKeyError is a JSON object with a key given twice.
type duplicateKeyError struct{ path string }

func (e *duplicateKeyError) Error() string { return e.path + ": key given twice" }

// pathSeg is one step of the path to a value: a key or a list index.
type pathSeg struct {
	key   string
	index int
	isKey bool
}

// pathString renders a path as written in YAML, e.g. "spec.ingress[0]".
func pathString(segs []pathSeg) string {
	var p string
	for _, s := range segs {
		if s.isKey {
			p = pkey(p, s.key)
		} else {
			p = pindex(p, s.index)
		}
	}
	return p
}

// depthError is the error for a value nested deeper than MaxDepth.
func depthError(segs []pathSeg) *DocError {
	return &DocError{Item: -1, Path: pathString(segs), Msg: fmt.Sprintf("nested deeper than the limit of %d levels", MaxDepth)}
}

// jsonReader reads one JSON value token by token, so that a key given
// twice in one object is an error rather than silently last-wins. It keeps
// the path to the current value as a stack and renders it only for an
// error, so that its cost is linear in the input.
type jsonReader struct {
	dec  *json.Decoder
	path []pathSeg
}

func (r *jsonReader) value(depth int) (any, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		if depth > MaxDepth {
			return nil, depthError(r.path)
		}
		m := map[string]any{}
		for r.dec.More() {
			kt, err := r.dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			if _, dup := m[k]; dup {
				return nil, &duplicateKeyError{path: pathString(append(r.path, pathSeg{key: k, isKey: true}))}
			}
			r.path = append(r.path, pathSeg{key: k, isKey: true})
			v, err := r.value(depth + 1)
			r.path = r.path[:len(r.path)-1]
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		_, err := r.dec.Token() // '}'
		return m, err
	case json.Delim('['):
		if depth > MaxDepth {
			return nil, depthError(r.path)
		}
		l := []any{}
		for i := 0; r.dec.More(); i++ {
			r.path = append(r.path, pathSeg{index: i})
			v, err := r.value(depth + 1)
			r.path = r.path[:len(r.path)-1]
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := r.dec.Token() // ']'
		return l, err
	default:
		return tok, nil
	}
}
