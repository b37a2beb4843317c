package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// strictDecoder fills a typed value from a generic document tree (maps,
// lists, strings, json.Number, bools and nils, as json.Decoder produces
// with UseNumber). It exists because encoding/json's DisallowUnknownFields
// names an unknown field without its path and stops at the first one; this
// decoder reports every unknown field and every type mismatch with its full
// path as written in YAML ("spec.ingress[0].destinaton"). Field names match
// exactly (encoding/json would also accept "CIDR" for "cidr").
type strictDecoder struct {
	fe fieldErrors
	// unsupported, if set, explains why a field that is not in the Go type
	// is known but refused (e.g. a Felix setting Calyx does not have). It
	// returns "" for a field it does not know.
	unsupported func(t reflect.Type, key string) string
	// fieldCache holds the field table of each struct type seen.
	fieldCache map[reflect.Type][]structField
}

type structField struct {
	name  string
	index []int
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// decode stores v into dst (which must be settable) and records any errors
// under path. behindPtr tells whether dst is the target of a pointer: an
// empty list there stays an empty (non-nil) slice, because a pointer to an
// empty list ("failsafeInboundHostPorts: []") means something different
// from an unset field; elsewhere empty lists and maps decode as nil, so that
// decoding and re-encoding round-trips exactly.
func (d *strictDecoder) decode(path string, v any, dst reflect.Value, behindPtr bool) {
	t := dst.Type()
	if t.Kind() == reflect.Pointer {
		if v == nil {
			dst.SetZero()
			return
		}
		p := reflect.New(t.Elem())
		d.decode(path, v, p.Elem(), true)
		dst.Set(p)
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if v == nil {
			dst.SetZero()
			return
		}
		raw, err := json.Marshal(v)
		if err == nil {
			err = dst.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw)
		}
		if err != nil {
			d.fe.add(path, "%s", err.Error())
		}
		return
	}
	if v == nil {
		dst.SetZero()
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(path, v, dst)
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			d.mismatch(path, "a list", v)
			return
		}
		if len(list) == 0 && !behindPtr {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, e := range list {
			d.decode(pindex(path, i), e, s.Index(i), false)
		}
		dst.Set(s)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.mismatch(path, "a mapping", v)
			return
		}
		if len(m) == 0 && !behindPtr {
			dst.SetZero()
			return
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			ev := reflect.New(t.Elem()).Elem()
			d.decode(pkey(path, k), m[k], ev, false)
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		dst.Set(out)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.mismatch(path, "a string", v)
			return
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.mismatch(path, "true or false", v)
			return
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			d.mismatch(path, "an integer", v)
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || dst.OverflowInt(i) {
			d.fe.add(path, "expected an integer, got %s", n)
			return
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			d.mismatch(path, "a non-negative integer", v)
			return
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil || dst.OverflowUint(u) {
			d.fe.add(path, "expected an integer 0-%d, got %s", uint64(1)<<(8*t.Size())-1, n)
			return
		}
		dst.SetUint(u)
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			d.mismatch(path, "a number", v)
			return
		}
		f, err := strconv.ParseFloat(n.String(), t.Bits())
		if err != nil {
			d.fe.add(path, "expected a number, got %s", n)
			return
		}
		dst.SetFloat(f)
	default:
		d.fe.add(path, "cannot decode into %s", t)
	}
}

func (d *strictDecoder) decodeStruct(path string, v any, dst reflect.Value) {
	m, ok := v.(map[string]any)
	if !ok {
		d.mismatch(path, "a mapping", v)
		return
	}
	fields := d.fields(dst.Type())
	for _, k := range sortedKeys(m) {
		i := slices.IndexFunc(fields, func(f structField) bool { return f.name == k })
		if i < 0 {
			d.unknownField(pfield(path, k), k, dst.Type(), fields)
			continue
		}
		d.decode(pfield(path, k), m[k], dst.FieldByIndex(fields[i].index), false)
	}
}

// fields lists the JSON names of a struct's fields, with embedded structs
// without a name (TypeMeta `json:",inline"`) flattened into their parent.
func (d *strictDecoder) fields(t reflect.Type) []structField {
	if fs, ok := d.fieldCache[t]; ok {
		return fs
	}
	var out []structField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for _, sub := range d.fields(f.Type) {
				out = append(out, structField{name: sub.name, index: append([]int{i}, sub.index...)})
			}
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, structField{name: name, index: []int{i}})
	}
	if d.fieldCache == nil {
		d.fieldCache = map[reflect.Type][]structField{}
	}
	d.fieldCache[t] = out
	return out
}

// unknownField reports a field the type does not have, suggesting the
// nearest known name or listing the known ones.
func (d *strictDecoder) unknownField(path, key string, t reflect.Type, fields []structField) {
	if d.unsupported != nil {
		if msg := d.unsupported(t, key); msg != "" {
			d.fe.add(path, "%s", msg)
			return
		}
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if s := suggest(key, names); s != "" {
		d.fe.add(path, "unknown field; did you mean %q?", s)
		return
	}
	slices.Sort(names)
	d.fe.add(path, "unknown field; expected one of: %s", strings.Join(names, ", "))
}

// mismatch reports a value of the wrong type.
func (d *strictDecoder) mismatch(path, want string, got any) {
	hint := ""
	if _, ok := got.(bool); ok && want == "a string" {
		hint = " (YAML reads unquoted true, false, yes, no, on and off as booleans: quote the value)"
	}
	d.fe.add(path, "expected %s, got %s%s", want, describe(got), hint)
}

// describe names a generic value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// suggest returns the known name closest to key: equal ignoring case, or
// within an edit distance of 2 (1 for short names), or "".
func suggest(key string, known []string) string {
	best, bestD := "", 3
	if len(key) <= 4 {
		bestD = 2
	}
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if dist := editDistance(strings.ToLower(key), strings.ToLower(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
