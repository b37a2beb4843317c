package api

import (
	"fmt"
	"math"
	"strings"
)

// Validate checks the profile's rules and labelsToApply.
func (p *Profile) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &p.Metadata, nameDNS)
	validateRules(&fe, "spec.ingress", p.Spec.Ingress)
	validateRules(&fe, "spec.egress", p.Spec.Egress)
	validateLabels(&fe, "spec.labelsToApply", p.Spec.LabelsToApply)
	return fe.result(p)
}

// Validate checks the policy: its rules, selectors, order and types, and
// Calico's rules for doNotTrack and preDNAT policies.
func (g *GlobalNetworkPolicy) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &g.Metadata, nameDNS)
	s := &g.Spec
	if s.Order != nil && (math.IsNaN(*s.Order) || math.IsInf(*s.Order, 0)) {
		fe.add("spec.order", "must be a finite number")
	}
	validateSelector(&fe, "spec.selector", s.Selector)
	validateSelector(&fe, "spec.namespaceSelector", s.NamespaceSelector)
	validateSelector(&fe, "spec.serviceAccountSelector", s.ServiceAccountSelector)

	has := map[string]bool{}
	for i, t := range s.Types {
		validateEnum(&fe, pindex("spec.types", i), t, policyTypes, false)
		if has[t] {
			fe.add(pindex("spec.types", i), "%q is listed twice", t)
		}
		has[t] = true
	}
	if len(s.Types) > 0 {
		if len(s.Ingress) > 0 && !has[PolicyTypeIngress] {
			fe.add("spec.types", "must include Ingress when the policy has ingress rules")
		}
		if len(s.Egress) > 0 && !has[PolicyTypeEgress] {
			fe.add("spec.types", "must include Egress when the policy has egress rules")
		}
	}
	validateRules(&fe, "spec.ingress", s.Ingress)
	validateRules(&fe, "spec.egress", s.Egress)

	if s.DoNotTrack && s.PreDNAT {
		fe.add("spec.preDNAT", "doNotTrack and preDNAT cannot both be true")
	}
	if s.PreDNAT {
		if len(s.Egress) > 0 {
			fe.add("spec.egress", "a preDNAT policy may not have egress rules")
		}
		if has[PolicyTypeEgress] {
			fe.add("spec.types", "a preDNAT policy may not have type Egress")
		}
	}
	if (s.DoNotTrack || s.PreDNAT) && !s.ApplyOnForward {
		what := "doNotTrack"
		if s.PreDNAT {
			what = "preDNAT"
		}
		fe.add("spec.applyOnForward", "must be true when %s is true", what)
	}
	return fe.result(g)
}

// Validate checks the set's networks and labels.
func (g *GlobalNetworkSet) Validate() error {
	var fe fieldErrors
	validateMeta(&fe, &g.Metadata, nameDNS)
	validateNets(&fe, "spec.nets", g.Spec.Nets, 0)
	return fe.result(g)
}

// validateRules checks a list of rules; path is e.g. "spec.ingress".
func validateRules(fe *fieldErrors, path string, rules []Rule) {
	if len(rules) > MaxRules {
		fe.add(path, "has %d rules; at most %d are allowed", len(rules), MaxRules)
		return
	}
	for i := range rules {
		validateRule(fe, pindex(path, i), &rules[i])
	}
}

// validateRule is the rule validator shared by profiles and policies.
func validateRule(fe *fieldErrors, path string, r *Rule) {
	if r.Action == "" {
		fe.add(pfield(path, "action"), "must be set to one of %s", strings.Join(ruleActions, ", "))
	} else {
		validateEnum(fe, pfield(path, "action"), r.Action, ruleActions, false)
	}
	ipv := 0
	if r.IPVersion != nil {
		if *r.IPVersion != 4 && *r.IPVersion != 6 {
			fe.add(pfield(path, "ipVersion"), "%d: must be 4 or 6", *r.IPVersion)
		} else {
			ipv = *r.IPVersion
		}
	}
	validateProtocol(fe, pfield(path, "protocol"), r.Protocol, ipv)
	validateProtocol(fe, pfield(path, "notProtocol"), r.NotProtocol, ipv)
	validateICMP(fe, pfield(path, "icmp"), r.ICMP, r.Protocol, ipv)
	validateICMP(fe, pfield(path, "notICMP"), r.NotICMP, r.Protocol, ipv)
	validateEntity(fe, pfield(path, "source"), &r.Source, r.Protocol, ipv)
	validateEntity(fe, pfield(path, "destination"), &r.Destination, r.Protocol, ipv)
	if r.Metadata != nil {
		validateAnnotations(fe, pfield(path, "metadata.annotations"), r.Metadata.Annotations)
	}
}

// validateProtocol checks a protocol name or number, and that ICMP and
// ICMPv6 agree with ipVersion when it is given.
func validateProtocol(fe *fieldErrors, path string, p *Protocol, ipv int) {
	if p == nil {
		return
	}
	if p.Name == "" {
		if p.Number == 0 {
			fe.add(path, "0: protocol numbers must be 1-255")
		}
		return
	}
	c, ok := canonical(p.Name, protocolNames())
	if !ok || c != p.Name {
		fe.add(path, "%q: must be one of %s, or a number 1-255", p.Name, strings.Join(protocolNames(), ", "))
		return
	}
	switch {
	case p.Name == ProtocolICMP && ipv == 6:
		fe.add(path, "ICMP with ipVersion 6: use ICMPv6")
	case p.Name == ProtocolICMPv6 && ipv == 4:
		fe.add(path, "ICMPv6 with ipVersion 4: use ICMP")
	}
}

// validateICMP checks icmp or notICMP: type 0-254, code 0-255 only with a
// type, and a rule protocol of ICMP or ICMPv6.
func validateICMP(fe *fieldErrors, path string, f *ICMPFields, proto *Protocol, ipv int) {
	if f == nil {
		return
	}
	if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
		fe.add(pfield(path, "type"), "%d is out of range: must be 0-254", *f.Type)
	}
	if f.Code != nil {
		switch {
		case *f.Code < 0 || *f.Code > 255:
			fe.add(pfield(path, "code"), "%d is out of range: must be 0-255", *f.Code)
		case f.Type == nil:
			fe.add(pfield(path, "code"), "requires type to be set")
		}
	}
	n, ok := uint8(0), false
	if proto != nil {
		n, ok = proto.ToNumber()
	}
	switch {
	case !ok || (n != 1 && n != 58):
		fe.add(path, "requires protocol ICMP or ICMPv6")
	case n == 1 && ipv == 6:
		fe.add(path, "ICMP match with ipVersion 6: use protocol ICMPv6")
	case n == 58 && ipv == 4:
		fe.add(path, "ICMPv6 match with ipVersion 4: use protocol ICMP")
	}
}

// validateEntity checks a rule's source or destination.
func validateEntity(fe *fieldErrors, path string, e *EntityRule, proto *Protocol, ipv int) {
	validateNets(fe, pfield(path, "nets"), e.Nets, ipv)
	validateNets(fe, pfield(path, "notNets"), e.NotNets, ipv)
	validateSelector(fe, pfield(path, "selector"), e.Selector)
	validateSelector(fe, pfield(path, "notSelector"), e.NotSelector)
	validateSelector(fe, pfield(path, "namespaceSelector"), e.NamespaceSelector)
	if e.ServiceAccounts != nil {
		validateSelector(fe, pfield(path, "serviceAccounts.selector"), e.ServiceAccounts.Selector)
	}
	for _, f := range []struct {
		name  string
		ports []Port
	}{{"ports", e.Ports}, {"notPorts", e.NotPorts}} {
		if len(f.ports) == 0 {
			continue
		}
		fp := pfield(path, f.name)
		if proto == nil || !proto.SupportsPorts() {
			got := "not set"
			if proto != nil {
				got = proto.String()
			}
			fe.add(fp, "%s are only allowed when protocol is TCP, UDP or SCTP (protocol is %s)", f.name, got)
		}
		for i, p := range f.ports {
			validatePort(fe, pindex(fp, i), p)
		}
	}
}

// validatePort checks a port number, "min:max" range or named port.
func validatePort(fe *fieldErrors, path string, p Port) {
	if p.PortName != "" {
		if msg := portNameProblem(p.PortName); msg != "" {
			fe.add(path, "%s", msg)
		}
		return
	}
	if p.MinPort > p.MaxPort {
		fe.add(path, "range %d:%d: min must not be greater than max", p.MinPort, p.MaxPort)
	}
}

// portNameProblem applies the IANA service-name rule that Kubernetes and
// Calico use for named ports: at most 15 lower-case letters, digits and
// '-', at least one letter, not starting or ending with '-', and no "--".
func portNameProblem(name string) string {
	const rule = "must be at most 15 lower-case letters, digits and '-', with at least one letter, not starting or ending with '-' and without \"--\"; or a number 0-65535 or a \"min:max\" range"
	ok := len(name) <= 15 && portNameRE.MatchString(name) && !strings.Contains(name, "--") &&
		strings.ContainsFunc(name, func(c rune) bool { return c >= 'a' && c <= 'z' })
	if !ok {
		return fmt.Sprintf("named port %q %s", name, rule)
	}
	return ""
}
