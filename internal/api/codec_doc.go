package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// docContext locates a resource in the stream for its errors.
type docContext struct {
	index, item, line int
}

func (c docContext) fail(kind, name string, fields []FieldError, err error) *DocError {
	de := &DocError{Index: c.index, Item: c.item, Line: c.line, Kind: kind, Name: name, Fields: fields, Err: err}
	if len(fields) > 0 {
		de.Path, de.Msg = fields[0].Path, fields[0].Msg
	}
	return de
}

func (c docContext) failf(kind, path, format string, args ...any) *DocError {
	return c.fail(kind, "", []FieldError{{Path: path, Msg: fmt.Sprintf(format, args...)}}, nil)
}

// rawDoc is one document of the stream, read but not yet decoded.
type rawDoc struct {
	line  int // first line in the input
	value any // generic value: maps, lists, strings, json.Number, bools, nils
}

// decode turns one document into its resources.
func (d rawDoc) decode(index int) ([]Resource, error) {
	c := docContext{index: index, item: -1, line: d.line}
	v := d.value
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return decodeItems(c, "", "", v)
	case map[string]any:
		kind, _ := v["kind"].(string)
		if kind == KindList || listItemKind(kind) != "" {
			return decodeList(c, kind, v)
		}
		r, err := decodeResource(c, v)
		if err != nil {
			return nil, err
		}
		return []Resource{r}, nil
	default:
		return nil, c.failf("", "", "expected a resource (a mapping with apiVersion, kind, metadata and spec), got %s", describe(v))
	}
}

// listItemKind returns X for a Calico-style "XList" kind naming a known
// kind, else "".
func listItemKind(kind string) string {
	k, ok := strings.CutSuffix(kind, "List")
	if !ok || k == "" {
		return ""
	}
	if _, known := LookupKind(k); known && slices.Contains(KindNames(), k) || k == KindFelixConfiguration || calicoOnlyKinds[k] != "" {
		return k
	}
	return ""
}

// decodeList reads "kind: List" (or "kind: IPPoolList") and its items.
func decodeList(c docContext, kind string, obj map[string]any) ([]Resource, error) {
	av, _ := obj["apiVersion"].(string)
	var fe fieldErrors
	switch {
	case av == APIVersion || av == CalicoAPIVersion:
	case av == "v1" && kind == KindList: // Kubernetes' List, as kubectl prints it
	case obj["apiVersion"] == nil:
		fe.add("apiVersion", "must be set to %q (or %q for Calico manifests)", APIVersion, CalicoAPIVersion)
	default:
		fe.add("apiVersion", "%s is not supported: expected %q or %q", quoteValue(obj["apiVersion"]), APIVersion, CalicoAPIVersion)
	}
	for _, k := range sortedKeys(obj) {
		if !slices.Contains([]string{"apiVersion", "kind", "items", "metadata"}, k) {
			fe.add(k, "unknown field; expected one of: apiVersion, items, kind, metadata")
		}
	}
	items, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		fe.add("items", "expected a list of resources, got %s", describe(obj["items"]))
	}
	if len(fe) > 0 {
		return nil, c.fail(kind, "", fe, nil)
	}
	inherit := av
	if av == "v1" {
		inherit = ""
	}
	return decodeItems(c, listItemKind(kind), inherit, items)
}

// decodeItems decodes list items; itemKind and apiVersion, if set, fill in
// items that leave them out (as Calico's typed lists may).
func decodeItems(c docContext, itemKind, apiVersion string, items []any) ([]Resource, error) {
	out := make([]Resource, 0, len(items))
	for i, it := range items {
		ic := c
		ic.item = i
		m, ok := it.(map[string]any)
		if !ok {
			return nil, ic.failf("", "", "expected a resource (a mapping with apiVersion, kind, metadata and spec), got %s", describe(it))
		}
		if itemKind != "" {
			if m["kind"] == nil {
				m["kind"] = itemKind
			} else if m["kind"] != itemKind {
				return nil, ic.failf(fmt.Sprint(m["kind"]), "kind", "%s in a %sList: expected %q", describe(m["kind"]), itemKind, itemKind)
			}
		}
		if m["apiVersion"] == nil && apiVersion != "" {
			m["apiVersion"] = apiVersion
		}
		r, err := decodeResource(ic, m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeResource decodes, defaults and validates one resource.
func decodeResource(c docContext, obj map[string]any) (Resource, error) {
	kind, _ := obj["kind"].(string)
	var name string
	if meta, ok := obj["metadata"].(map[string]any); ok {
		name, _ = meta["name"].(string)
	}
	var fe fieldErrors
	av, _ := obj["apiVersion"].(string)
	switch {
	case av == APIVersion || av == CalicoAPIVersion:
	case obj["apiVersion"] == nil:
		fe.add("apiVersion", "must be set to %q (or %q for Calico manifests)", APIVersion, CalicoAPIVersion)
	default:
		fe.add("apiVersion", "%s is not supported: expected %q or %q", quoteValue(obj["apiVersion"]), APIVersion, CalicoAPIVersion)
	}
	info, kindMsg := documentKind(obj["kind"])
	if kindMsg != "" {
		fe.add("kind", "%s", kindMsg)
	}
	if len(fe) > 0 {
		return nil, c.fail(kind, name, fe, &ValidationError{Kind: kind, Name: name, Fields: fe})
	}
	if av == CalicoAPIVersion {
		convertCalico(info.Kind, obj)
	}
	r := info.New()
	d := strictDecoder{unsupported: unsupportedField}
	d.decode("", obj, reflect.ValueOf(r).Elem(), false)
	if len(d.fe) > 0 {
		return nil, c.fail(kind, name, d.fe, &ValidationError{Kind: kind, Name: name, Fields: d.fe})
	}
	r.SetDefaults()
	if err := r.Validate(); err != nil {
		if ve, ok := errors.AsType[*ValidationError](err); ok {
			return nil, c.fail(kind, name, ve.Fields, err)
		}
		return nil, c.fail(kind, name, []FieldError{{Msg: err.Error()}}, err)
	}
	return r, nil
}

// documentKind resolves a document's kind field. Only canonical names are
// accepted (aliases such as "pool" are for the command line), plus
// FelixConfiguration for NodeConfiguration.
func documentKind(v any) (KindInfo, string) {
	accepted := strings.Join(KindNames(), ", ")
	kind, ok := v.(string)
	switch {
	case v == nil || ok && kind == "":
		return KindInfo{}, "must be set to one of: " + accepted
	case !ok:
		return KindInfo{}, fmt.Sprintf("expected a string, got %s", describe(v))
	case kind == KindFelixConfiguration:
		info, _ := LookupKind(KindNodeConfiguration)
		return info, ""
	case calicoOnlyKinds[kind] != "":
		return KindInfo{}, fmt.Sprintf("%q: %s", kind, calicoOnlyKinds[kind])
	}
	for _, k := range append(KindNames(), KindFelixConfiguration) {
		if k == kind {
			info, _ := LookupKind(k)
			return info, ""
		}
		if strings.EqualFold(k, kind) {
			return KindInfo{}, fmt.Sprintf("%q: kinds are case-sensitive; did you mean %q?", kind, k)
		}
	}
	return KindInfo{}, fmt.Sprintf("%q is not a Calyx kind; expected one of: %s (FelixConfiguration is read as NodeConfiguration)", kind, accepted)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlErrorMessage cleans up a YAML parser error and makes its line
// numbers count from the start of the input rather than of the document.
func yamlErrorMessage(err error, startLine int) string {
	msg := err.Error()
	if strings.Contains(msg, "exceeded max depth") {
		// The parser's own bound (10,000 levels) is far above ours.
		return fmt.Sprintf("nested deeper than the limit of %d levels", MaxDepth)
	}
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:")
	msg = strings.Join(strings.Fields(msg), " ")
	msg = yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
		return "line " + strconv.Itoa(n+startLine-1)
	})
	return "malformed YAML: " + msg
}

// resourceList is the document EncodeYAML and EncodeJSON print for several
// resources.
type resourceList struct {
	TypeMeta `json:",inline"`
	Items    []Resource `json:"items"`
}

// EncodeYAML prints resources as calyx.dev/v1 YAML: one resource as its own
// document, any other number as a List. Decode reads the output back to
// equal resources.
func EncodeYAML(rs []Resource) ([]byte, error) {
	v, err := encodable(rs)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding resources: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("encoding resources as YAML: %w", err)
	}
	return y, nil
}

// EncodeJSON is EncodeYAML's JSON form, indented, with a final newline.
func EncodeJSON(rs []Resource) ([]byte, error) {
	v, err := encodable(rs)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding resources: %w", err)
	}
	return append(b, '\n'), nil
}

// encodable copies the resources with calyx.dev/v1 TypeMeta, wrapped in a
// List unless there is exactly one.
func encodable(rs []Resource) (any, error) {
	out := make([]Resource, len(rs))
	for i, r := range rs {
		if r == nil {
			return nil, fmt.Errorf("encoding resource %d: resource is nil", i)
		}
		c := r.DeepCopyResource()
		*c.GetTypeMeta() = TypeMeta{Kind: r.GetKind(), APIVersion: APIVersion}
		out[i] = c
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return resourceList{TypeMeta: TypeMeta{Kind: KindList, APIVersion: APIVersion}, Items: out}, nil
}

// quoteValue quotes a string value, or describes any other.
func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return describe(v)
}
