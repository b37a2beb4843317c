package api

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calyx-net/calyx/internal/selector"
)

// Validation is split by kind group: validate_ipam.go (IPPool,
// IPAMConfiguration, ValidatePools), validate_policy.go (rules, Profile,
// GlobalNetworkPolicy, GlobalNetworkSet), validate_endpoint.go
// (WorkloadEndpoint, HostEndpoint) and validate_node.go (Node, BGPPeer,
// BGPConfiguration, NodeConfiguration). This file holds the metadata rules
// and the helpers they share. Every check reports the field's path as it is
// written in YAML, e.g. "spec.ingress[0].destination.ports[1]".

var (
	// dnsLabelRE is one label of a DNS subdomain (RFC 1123).
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// qualifiedNameRE is the name part of a Kubernetes qualified name, and
	// also the rule for a non-empty label value.
	qualifiedNameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// portNameRE is the IANA service-name alphabet; the at-least-one-letter
	// and no-"--" rules are checked separately.
	portNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// simpleKeyRE is a map key that can be written after a dot in a path.
	simpleKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Paths.

// pfield appends a field name to a path.
func pfield(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// pindex appends a list index to a path.
func pindex(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// pkey appends a map key to a path: "metadata.labels.app", or
// `metadata.labels["calyx.dev/net"]` when the key is not a plain word.
func pkey(path, key string) string {
	if simpleKeyRE.MatchString(key) {
		return pfield(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// Names and labels.

// dnsSubdomainProblem explains why s is not a DNS subdomain (lower case
// letters, digits, '-' and '.', at most 253 characters, each dot-separated
// label at most 63 and starting and ending with a letter or digit), or
// returns "".
func dnsSubdomainProblem(s string) string {
	const rule = "must be lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 253:
		return fmt.Sprintf("%q is %d characters long: at most 253 allowed", s, len(s))
	}
	for part := range strings.SplitSeq(s, ".") {
		if len(part) > 63 {
			return fmt.Sprintf("%q has a part %d characters long: each dot-separated part may have at most 63", s, len(part))
		}
		if !dnsLabelRE.MatchString(part) {
			return fmt.Sprintf("%q %s", s, rule)
		}
	}
	return ""
}

// qualifiedNameProblem checks a label or annotation key: an optional DNS
// subdomain prefix and "/", then a name of at most 63 letters, digits, '-',
// '_' and '.', starting and ending with a letter or digit.
func qualifiedNameProblem(key string) string {
	name := key
	if prefix, rest, ok := strings.Cut(key, "/"); ok {
		if p := dnsSubdomainProblem(prefix); p != "" {
			return fmt.Sprintf("key %q: prefix before '/' %s", key, strings.TrimPrefix(p, strconv.Quote(prefix)+" "))
		}
		name = rest
	}
	switch {
	case name == "":
		return fmt.Sprintf("key %q: name must not be empty", key)
	case len(name) > 63:
		return fmt.Sprintf("key %q: name is %d characters long: at most 63 allowed", key, len(name))
	case !qualifiedNameRE.MatchString(name):
		return fmt.Sprintf("key %q: name must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS-subdomain prefix and '/'", key)
	}
	return ""
}

// labelValueProblem checks a label value: empty, or at most 63 letters,
// digits, '-', '_' and '.' starting and ending with a letter or digit.
func labelValueProblem(v string) string {
	switch {
	case v == "":
		return ""
	case len(v) > 63:
		return fmt.Sprintf("value %q is %d characters long: at most 63 allowed", v, len(v))
	case !qualifiedNameRE.MatchString(v):
		return fmt.Sprintf("value %q must be empty or letters, digits, '-', '_' and '.', starting and ending with a letter or digit", v)
	}
	return ""
}

// Limits on the size of one resource. A resource is read by every agent
// and its labels and rules are evaluated for every endpoint, so an
// unbounded one (a generated manifest gone wrong) costs the whole cluster.
const (
	// MaxLabels is the most labels (or annotations) one map may hold.
	MaxLabels = 256
	// MaxRules is the most rules one direction (ingress or egress) of a
	// policy or profile may hold.
	MaxRules = 1000
)

func validateLabels(fe *fieldErrors, path string, labels map[string]string) {
	if len(labels) > MaxLabels {
		fe.add(path, "has %d entries; at most %d are allowed", len(labels), MaxLabels)
		return
	}
	for _, k := range sortedKeys(labels) {
		if p := qualifiedNameProblem(k); p != "" {
			fe.add(pkey(path, k), "%s", p)
		}
		if p := labelValueProblem(labels[k]); p != "" {
			fe.add(pkey(path, k), "%s", p)
		}
	}
}

func validateAnnotations(fe *fieldErrors, path string, annotations map[string]string) {
	if len(annotations) > MaxLabels {
		fe.add(path, "has %d entries; at most %d are allowed", len(annotations), MaxLabels)
		return
	}
	for _, k := range sortedKeys(annotations) {
		if p := qualifiedNameProblem(k); p != "" {
			fe.add(pkey(path, k), "%s", p)
		}
	}
}

// nameRule says which metadata.name a kind allows.
type nameRule int

const (
	nameDNS           nameRule = iota // any DNS subdomain
	nameDefault                       // only "default"
	nameDefaultOrNode                 // "default" or "node.<nodename>"
)

// validateMeta checks the metadata every kind carries. Calyx resources are
// global, so metadata.namespace must be empty (the codec drops the
// namespace "default" that Calico v3 WorkloadEndpoints carry).
func validateMeta(fe *fieldErrors, m *ObjectMeta, rule nameRule) {
	const path = "metadata.name"
	switch {
	case m.Name == "":
		fe.add(path, "must be set")
	case rule == nameDefault:
		if m.Name != "default" {
			fe.add(path, "%q: must be \"default\" (there is one object of this kind)", m.Name)
		}
	case rule == nameDefaultOrNode:
		if m.Name == "default" {
			break
		}
		node, ok := strings.CutPrefix(m.Name, "node.")
		if !ok {
			fe.add(path, "%q: must be \"default\" or \"node.<nodename>\"", m.Name)
		} else if p := dnsSubdomainProblem(node); p != "" {
			fe.add(path, "node name in %q: %s", m.Name, p)
		}
	default:
		if p := dnsSubdomainProblem(m.Name); p != "" {
			fe.add(path, "%s", p)
		}
	}
	if m.Namespace != "" {
		fe.add("metadata.namespace", "%q: must be empty: Calyx resources are not namespaced", m.Namespace)
	}
	validateLabels(fe, "metadata.labels", m.Labels)
	validateAnnotations(fe, "metadata.annotations", m.Annotations)
}

// Addresses.

// parseNetwork parses a network written as a CIDR or a bare IP (which
// means /32 or /128). It reports host bits as an error with a suggestion.
func parseNetwork(s string) (netip.Prefix, error) {
	p, err := parseCIDROrIP(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, m)
	}
	return p, nil
}

// parseCIDROrIP parses "10.0.0.0/16" or "10.0.0.1" (as /32); host bits are
// allowed.
func parseCIDROrIP(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR or IP address (expected e.g. 10.0.0.0/16 or fd00::/64)", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return parseCIDR(s)
}

// parseCIDR parses "address/prefix" strictly; host bits are allowed.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR (expected address/prefix, e.g. 10.0.0.0/16 or fd00::/64)", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR: write the IPv4 form", s)
	}
	return p, nil
}

// family is 4 or 6.
func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// validateIP checks an IP address, of the given family unless want is 0.
func validateIP(fe *fieldErrors, path, s string, want int) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || a.Zone() != "":
		fe.add(path, "%q is not a valid IP address", s)
	case want != 0 && family(a) != want:
		fe.add(path, "%q is not an IPv%d address", s, want)
	}
}

// validateNets checks a list of networks (CIDRs or bare IPs), of the given
// family unless want is 0.
func validateNets(fe *fieldErrors, path string, nets []string, want int) {
	for i, n := range nets {
		p, err := parseNetwork(n)
		switch {
		case err != nil:
			fe.add(pindex(path, i), "%s", err.Error())
		case want != 0 && family(p.Addr()) != want:
			fe.add(pindex(path, i), "%s is an IPv%d network but ipVersion is %d", n, family(p.Addr()), want)
		}
	}
}

// Selectors.

// validateSelector checks that a non-empty selector parses.
func validateSelector(fe *fieldErrors, path, expr string) {
	if strings.TrimSpace(expr) == "" {
		return
	}
	if _, err := selector.Parse(expr); err != nil {
		if pe, ok := errors.AsType[*selector.ParseError](err); ok {
			fe.add(path, "invalid selector %q: %s at position %d", expr, pe.Msg, pe.Pos)
			return
		}
		fe.add(path, "invalid selector %q: %s", expr, err.Error())
	}
}

// Enumerations.

// canonical returns the member of allowed equal to s ignoring case.
func canonical(s string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a, true
		}
	}
	return s, false
}

// normalizeEnum rewrites *s to its canonical case if it is a member of
// allowed, leaving it alone otherwise (validation then reports it).
func normalizeEnum(s *string, allowed []string) {
	if c, ok := canonical(*s, allowed); ok {
		*s = c
	}
}

// validateEnum checks that s is one of allowed (exactly: SetDefaults has
// normalised the case), unless s is empty and empty is allowed.
func validateEnum(fe *fieldErrors, path, s string, allowed []string, emptyOK bool) {
	if s == "" && emptyOK {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	fe.add(path, "%q: must be one of %s", s, strings.Join(allowed, ", "))
}

// Log severities accepted by BGPConfiguration and NodeConfiguration.
var logSeverities = []string{"Debug", "Info", "Warning", "Error", "Fatal"}

// validateDuration checks a Go duration such as "90s" or "1m30s".
func validateDuration(fe *fieldErrors, path, s string) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		fe.add(path, "%q is not a duration (expected e.g. \"90s\", \"1m30s\" or \"0s\")", s)
	case d < 0:
		fe.add(path, "%q: must not be negative", s)
	}
}

// validateIntRange checks an optional integer against [lo, hi].
func validateIntRange(fe *fieldErrors, path string, v *int, lo, hi int) {
	if v != nil && (*v < lo || *v > hi) {
		fe.add(path, "%d is out of range: must be %d-%d", *v, lo, hi)
	}
}

// validateProfileRefs checks a list of profile names.
func validateProfileRefs(fe *fieldErrors, path string, profiles []string) {
	for i, p := range profiles {
		if msg := dnsSubdomainProblem(p); msg != "" {
			fe.add(pindex(path, i), "profile name %s", msg)
		}
	}
}

// sortedKeys returns a map's keys in order, so that errors are reported in
// a stable order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
