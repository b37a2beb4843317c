package selector

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
)

// Labels is a source of labels that is not a plain map, for example an
// endpoint's own labels layered over those it inherits from its profiles.
// Get reports the value of key and whether key is present at all; a label
// present with the empty value is not the same as a missing label.
type Labels interface {
	Get(key string) (value string, ok bool)
}

// mapLabels adapts a map to Labels. A map is pointer-shaped, so converting
// one to the interface does not allocate.
type mapLabels map[string]string

func (m mapLabels) Get(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

// noLabels stands in for a nil Labels: no label is present.
type noLabels struct{}

func (noLabels) Get(string) (string, bool) { return "", false }

// Selector is a parsed selector. It is immutable and safe for concurrent
// use. Obtain one from Parse or MustParse; the zero Selector behaves like
// the empty selector, all().
type Selector struct {
	root   *node
	canon  string   // canonical form
	id     string   // UniqueID
	hash   string   // Hash
	keys   []string // sorted distinct label keys
	global bool     // global() appears somewhere
}

// Parse parses expr. On failure the error is a *ParseError.
func Parse(expr string) (*Selector, error) {
	root, err := parse(expr)
	if err != nil {
		return nil, err
	}
	return newSelector(root), nil
}

// MustParse is like Parse but panics if expr does not parse. Use it only in
// tests and for selectors that are constants in the source; anything that
// comes from a user or the datastore goes through Parse. The panic value is
// an error wrapping the *ParseError.
func MustParse(expr string) *Selector {
	s, err := Parse(expr)
	if err != nil {
		panic(fmt.Errorf("parsing constant selector: %w", err))
	}
	return s
}

// Canonicalize returns the canonical form of expr: Parse followed by
// String. On failure the error is a *ParseError.
func Canonicalize(expr string) (string, error) {
	s, err := Parse(expr)
	if err != nil {
		return "", err
	}
	return s.canon, nil
}

// newSelector freezes root and precomputes everything derived from it, so
// that the accessors are plain field reads.
func newSelector(root *node) *Selector {
	s := &Selector{root: root}
	s.canon = string(root.appendCanonical(nil))
	s.id = uniqueID(s.canon)
	sum := sha256.Sum256([]byte(s.canon))
	s.hash = hex.EncodeToString(sum[:6])
	root.walk(func(n *node) {
		switch n.op {
		case opGlobal:
			s.global = true
		case opAll, opNot, opAnd, opOr:
		default:
			s.keys = append(s.keys, n.label)
		}
	})
	slices.Sort(s.keys)
	s.keys = slices.Clip(slices.Compact(s.keys))
	return s
}

// uniqueID computes Calico's selector ID from a canonical form.
func uniqueID(canon string) string {
	sum := sha256.Sum224([]byte("s:" + canon))
	return "s:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// String returns the canonical form of s (see the package documentation).
// Parse(s.String()) yields a selector with the same canonical form.
func (s *Selector) String() string {
	if s.root == nil {
		return opAll.String()
	}
	return s.canon
}

// UniqueID returns Calico's identifier for s: "s:" followed by the unpadded
// base64url encoding of SHA-224("s:" + canonical form). Selectors with the
// same canonical form have the same UniqueID.
func (s *Selector) UniqueID() string {
	if s.root == nil {
		return uniqueID(opAll.String())
	}
	return s.id
}

// Hash returns a short stable name for s: the first 12 lowercase hex
// digits (48 bits) of SHA-256 of the canonical form. It fits in kernel
// object names, such as nftables set names, where UniqueID does not; with
// 48 bits, collisions are negligible for the few thousand selectors a
// cluster uses.
func (s *Selector) Hash() string {
	if s.root == nil {
		sum := sha256.Sum256([]byte(opAll.String()))
		return hex.EncodeToString(sum[:6])
	}
	return s.hash
}

// Evaluate reports whether labels satisfy s. A nil map has no labels. It
// does not allocate.
func (s *Selector) Evaluate(labels map[string]string) bool {
	if s.root == nil {
		return true
	}
	return s.root.eval(mapLabels(labels))
}

// EvaluateLabels reports whether l satisfies s. A nil l has no labels.
// It does not allocate unless l.Get does.
func (s *Selector) EvaluateLabels(l Labels) bool {
	if s.root == nil {
		return true
	}
	if l == nil {
		l = noLabels{}
	}
	return s.root.eval(l)
}

// LabelKeys returns the sorted, distinct label keys that s refers to, for
// indexing selectors by label. The caller owns the returned slice.
func (s *Selector) LabelKeys() []string {
	return slices.Clone(s.keys)
}

// UsesGlobal reports whether global() appears anywhere in s, even under
// "!". Callers that give global() its "non-namespaced only" meaning must
// rewrite such selectors before use.
func (s *Selector) UsesGlobal() bool {
	return s.global
}
