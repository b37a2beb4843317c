package api

import (
	"strconv"
	"testing"
)

func TestValidateLimits(t *testing.T) {
	labels := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m["k"+strconv.Itoa(i)] = "v"
		}
		return m
	}
	rules := func(n int) []Rule {
		rs := make([]Rule, n)
		for i := range rs {
			rs[i] = Rule{Action: ActionAllow}
		}
		return rs
	}
	runValidateCases(t, []validateCase{
		{name: "labels at limit", r: testProfile(func(p *Profile) { p.Metadata.Labels = labels(MaxLabels) })},
		{name: "labels over limit", r: testProfile(func(p *Profile) { p.Metadata.Labels = labels(MaxLabels + 1) }),
			path: "metadata.labels", msg: "has 257 entries; at most 256 are allowed"},
		{name: "annotations over limit", r: testProfile(func(p *Profile) { p.Metadata.Annotations = labels(MaxLabels + 1) }),
			path: "metadata.annotations", msg: "at most 256"},
		{name: "labelsToApply over limit", r: testProfile(func(p *Profile) { p.Spec.LabelsToApply = labels(MaxLabels + 1) }),
			path: "spec.labelsToApply", msg: "at most 256"},
		{name: "rules at limit", r: testProfile(func(p *Profile) { p.Spec.Ingress = rules(MaxRules) })},
		{name: "ingress rules over limit", r: testProfile(func(p *Profile) { p.Spec.Ingress = rules(MaxRules + 1) }),
			path: "spec.ingress", msg: "has 1001 rules; at most 1000 are allowed"},
		{name: "egress rules over limit", r: testGNP(func(g *GlobalNetworkPolicy) { g.Spec.Egress = rules(MaxRules + 1) }),
			path: "spec.egress", msg: "at most 1000"},
	})
}
