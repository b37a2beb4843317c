package calc

import (
	"fmt"
	"testing"

	"github.com/calyx-net/calyx/internal/api"
)

// benchState is 1,000 policies over 1,000 local endpoints (each matched by
// 21 policies), 10,000 remote endpoints all selected by one rule (a
// 10,000-address set) and spread over 100 role selectors.
func benchState(b *testing.B) []api.Resource {
	b.Helper()
	var rs []api.Resource
	add := func(r api.Resource) {
		r.SetDefaults()
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
		rs = append(rs, r)
	}
	add(profile("net1", lbl("net", "net1"), rules(allowFrom("net == 'net1'")), rules(allow())))
	for i := range 1000 {
		add(wep(fmt.Sprintf("local-%d", i), "n1", fmt.Sprintf("calyx%010x", i),
			lbl("app", fmt.Sprintf("app%d", i%50), "role", fmt.Sprintf("role%d", i%100)), []string{"net1"},
			fmt.Sprintf("10.0.%d.%d/32", i/256, i%256)))
	}
	for i := range 10000 {
		add(wep(fmt.Sprintf("remote-%d", i), fmt.Sprintf("n%d", 2+i%10), fmt.Sprintf("calyx%010x", i),
			lbl("tier", "big", "role", fmt.Sprintf("role%d", i%100)), []string{"net1"},
			fmt.Sprintf("10.1.%d.%d/32", i/256, i%256)))
	}
	for i := range 1000 {
		add(benchPolicy(i, 1000+i))
	}
	add(gnp("big", ord(0), "all()", nil, rules(allowFrom("tier == 'big'")), nil))
	return rs
}

func benchPolicy(i, port int) *api.GlobalNetworkPolicy {
	return gnp(fmt.Sprintf("pol-%d", i), ord(float64(i)), fmt.Sprintf("app == 'app%d'", i%50), nil, rules(
		api.Rule{Action: api.ActionAllow, Protocol: proto("TCP"),
			Source:      api.EntityRule{Selector: fmt.Sprintf("role == 'role%d'", i%100)},
			Destination: api.EntityRule{Ports: ports(fmt.Sprint(port))}},
		api.Rule{Action: api.ActionDeny, Source: api.EntityRule{Nets: []string{fmt.Sprintf("192.168.%d.0/24", i%256)}}},
	), nil)
}

func BenchmarkReplace(b *testing.B) {
	rs := benchState(b)
	for b.Loop() {
		c := New("n1")
		c.Replace(rs)
	}
}

func loaded(b *testing.B) *Calc {
	b.Helper()
	c := New("n1")
	c.Replace(benchState(b))
	c.TakeDelta()
	return c
}

// A remote endpoint's label change moves its address between two of the
// 100 role sets.
func BenchmarkUpdateRemoteLabel(b *testing.B) {
	c := loaded(b)
	w := c.res.weps["remote-5"]
	variants := [2]*api.WorkloadEndpoint{}
	for i, role := range []string{"role6", "role5"} {
		v := w.DeepCopyResource().(*api.WorkloadEndpoint)
		v.Metadata.Labels["role"] = role
		variants[i] = v
	}
	i := 0
	for b.Loop() {
		c.Update(api.KindWorkloadEndpoint, "remote-5", variants[i%2])
		if c.TakeDelta().Empty() {
			b.Fatal("no delta")
		}
		i++
	}
}

// One policy's rule is edited (its port changes).
func BenchmarkUpdatePolicy(b *testing.B) {
	c := loaded(b)
	variants := [2]*api.GlobalNetworkPolicy{benchPolicy(17, 2017), benchPolicy(17, 1017)}
	for _, v := range variants {
		v.SetDefaults()
	}
	i := 0
	for b.Loop() {
		c.Update(api.KindGlobalNetworkPolicy, "pol-17", variants[i%2])
		if c.TakeDelta().Empty() {
			b.Fatal("no delta")
		}
		i++
	}
}

// A local endpoint's label change moves it between two groups of 20
// policies.
func BenchmarkUpdateLocalLabel(b *testing.B) {
	c := loaded(b)
	w := c.res.weps["local-7"]
	variants := [2]*api.WorkloadEndpoint{}
	for i, app := range []string{"app8", "app7"} {
		v := w.DeepCopyResource().(*api.WorkloadEndpoint)
		v.Metadata.Labels["app"] = app
		variants[i] = v
	}
	i := 0
	for b.Loop() {
		c.Update(api.KindWorkloadEndpoint, "local-7", variants[i%2])
		if c.TakeDelta().Empty() {
			b.Fatal("no delta")
		}
		i++
	}
}

// A remote endpoint leaves and rejoins the 10,000-address set.
func BenchmarkUpdateBigSetMember(b *testing.B) {
	c := loaded(b)
	w := c.res.weps["remote-5"]
	variants := [2]*api.WorkloadEndpoint{}
	for i, tier := range []string{"small", "big"} {
		v := w.DeepCopyResource().(*api.WorkloadEndpoint)
		v.Metadata.Labels["tier"] = tier
		variants[i] = v
	}
	i := 0
	for b.Loop() {
		c.Update(api.KindWorkloadEndpoint, "remote-5", variants[i%2])
		if len(c.TakeDelta().Sets) != 1 {
			b.Fatal("want one set in the delta")
		}
		i++
	}
}

// The profile every endpoint names gets a new rule (its labels stay).
func BenchmarkUpdateProfileRules(b *testing.B) {
	c := loaded(b)
	variants := [2]*api.Profile{
		profile("net1", lbl("net", "net1"), rules(allowFrom("net == 'net1'"), deny()), rules(allow())),
		profile("net1", lbl("net", "net1"), rules(allowFrom("net == 'net1'")), rules(allow())),
	}
	for _, v := range variants {
		v.SetDefaults()
	}
	i := 0
	for b.Loop() {
		c.Update(api.KindProfile, "net1", variants[i%2])
		if len(c.TakeDelta().Chains) != 1 {
			b.Fatal("want one chain in the delta")
		}
		i++
	}
}

// A resync Replaces the state with an equal snapshot of new values.
func BenchmarkReplaceEqualSnapshot(b *testing.B) {
	c := loaded(b)
	copies := [2][]api.Resource{}
	for i := range copies {
		for _, r := range benchState(b) {
			copies[i] = append(copies[i], r.DeepCopyResource())
		}
	}
	i := 0
	for b.Loop() {
		c.Replace(copies[i%2])
		if !c.TakeDelta().Empty() {
			b.Fatal("an equal snapshot changed the state")
		}
		i++
	}
}
