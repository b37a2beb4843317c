package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// yamlConverter turns a parsed YAML document into the generic tree the
// strict decoder reads, as sigs.k8s.io/yaml's YAML-to-JSON conversion
// would: numbers become json.Number, timestamps stay strings, and the
// YAML 1.1 booleans (yes, no, on, off, y, n) that Kubernetes tooling reads
// as booleans are booleans here too. A key given twice in a mapping is an
// error, as is nesting deeper than MaxDepth or expanding (through aliases
// and merges) to more than maxDocumentValues values.
type yamlConverter struct {
	lineBase int // lines of input before the YAML stream
	// values counts the nodes visited so far: every value, every merge
	// source and every merged key, including those a merge skips because
	// the key is already set. Skipped keys leave no value behind, but
	// merges of merges can visit exponentially many of them, so the
	// budget bounds the work, not only the size of the result.
	values int
	path   []pathSeg
}

// count charges one visited node against the document's budget.
func (c *yamlConverter) count() error {
	c.values++
	if c.values > maxDocumentValues {
		return fmt.Errorf("the document holds more than the limit of %d values (counting those repeated through aliases and merges)", maxDocumentValues)
	}
	return nil
}

func (c *yamlConverter) value(n *yaml.Node, depth int) (any, error) {
	if err := c.count(); err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, c.errorf(n, "unknown alias %q", n.Value)
		}
		return c.value(n.Alias, depth)
	case yaml.ScalarNode:
		return c.scalar(n)
	case yaml.SequenceNode:
		if depth > MaxDepth {
			return nil, depthError(c.path)
		}
		l := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			c.path = append(c.path, pathSeg{index: i})
			v, err := c.value(e, depth+1)
			c.path = c.path[:len(c.path)-1]
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.MappingNode:
		if depth > MaxDepth {
			return nil, depthError(c.path)
		}
		m := make(map[string]any, len(n.Content)/2)
		if err := c.mapping(n, depth, m, false); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, c.errorf(n, "unexpected YAML node")
}

// mapping adds n's entries to m. Explicit keys are added first and win
// over merged ("<<") ones; merged maps do not override keys already set.
func (c *yamlConverter) mapping(n *yaml.Node, depth int, m map[string]any, merging bool) error {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		isMerge := kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge"
		if merging || isMerge {
			// Each merged key is work even when it is skipped below, as
			// is each "<<" entry (even one merging an empty list).
			if err := c.count(); err != nil {
				return err
			}
		}
		if isMerge {
			merges = append(merges, vn)
			continue
		}
		k, err := c.key(kn)
		if err != nil {
			return err
		}
		if _, dup := m[k]; dup {
			if merging {
				continue
			}
			return c.errorf(kn, "key %q already set in map", k)
		}
		c.path = append(c.path, pathSeg{key: k, isKey: true})
		v, err := c.value(vn, depth+1)
		c.path = c.path[:len(c.path)-1]
		if err != nil {
			return err
		}
		m[k] = v
	}
	for _, mn := range merges {
		for mn.Kind == yaml.AliasNode && mn.Alias != nil {
			mn = mn.Alias
		}
		srcs := []*yaml.Node{mn}
		if mn.Kind == yaml.SequenceNode {
			srcs = mn.Content
		}
		for _, src := range srcs {
			for src.Kind == yaml.AliasNode && src.Alias != nil {
				src = src.Alias
			}
			if src.Kind != yaml.MappingNode {
				return c.errorf(mn, "a merge (<<) needs a mapping or a list of mappings")
			}
			if err := c.count(); err != nil {
				return err
			}
			if err := c.mapping(src, depth, m, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// key renders a mapping key as a string, as the YAML-to-JSON conversion
// does for non-string keys.
func (c *yamlConverter) key(n *yaml.Node) (string, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return "", c.errorf(n, "a mapping key must be a string, not a list or mapping")
	}
	v, err := c.scalar(n)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(v), nil
	case json.Number:
		return v.String(), nil
	}
	return n.Value, nil
}

// yaml11Bools are the plain scalars YAML 1.1 reads as booleans.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

func (c *yamlConverter) scalar(n *yaml.Node) (any, error) {
	plain := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, c.errorf(n, "%s", err.Error())
		}
		return b, nil
	case "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, c.errorf(n, "%s", err.Error())
		}
		switch v := v.(type) {
		case int:
			return json.Number(strconv.Itoa(v)), nil
		case int64:
			return json.Number(strconv.FormatInt(v, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(v, 10)), nil
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, c.errorf(n, "%s is not a number JSON can hold", n.Value)
			}
			if json.Valid([]byte(n.Value)) {
				return json.Number(n.Value), nil
			}
			return json.Number(strconv.FormatFloat(v, 'g', -1, 64)), nil
		}
		return n.Value, nil
	case "!!str", "!!timestamp":
		if b, ok := yaml11Bools[n.Value]; ok && plain {
			return b, nil
		}
		return n.Value, nil
	case "!!binary":
		return n.Value, nil
	}
	return nil, c.errorf(n, "unsupported YAML tag %s", n.Tag)
}

// errorf is a malformed-YAML error at n's line.
func (c *yamlConverter) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("malformed YAML: line %d: %s", n.Line+c.lineBase, fmt.Sprintf(format, args...))
}
