package nft

import (
	"github.com/calyx-net/calyx/internal/calc"
	"github.com/google/nftables/expr"
)

// Chain priorities (nft's named priorities).
const (
	prioFilter = 0
	prioDstNAT = -100
	prioSrcNAT = 100
)

// config renders the host-wide part: base chains, dispatch chains, the
// shared maps (their elements come from the endpoints) and NAT.
func (rd *renderer) config(cfg *calc.Config) *fragment {
	if cfg == nil {
		cfg = &calc.Config{}
	}
	f := &fragment{}
	chain := func(name string, base *BaseChain, rules ...*ruleBuilder) {
		d := &chainDef{spec: ChainSpec{Name: name, Base: base}}
		for _, b := range rules {
			d.rules = append(d.rules, b.rule(name, b.label))
		}
		f.chains = append(f.chains, d)
	}
	rb := func(label string) *ruleBuilder { return &ruleBuilder{label: label} }

	// Filter. Every base chain's policy is accept: Calyx only drops what
	// its policy denies and leaves everything else to the host's rules.
	chain(chainForward, &BaseChain{"filter", "forward", prioFilter},
		rb("workload egress").workloadIf(false).jump(chainWlOutDisp),
		rb("workload ingress").workloadIf(true).jump(chainWlInDisp))
	chain(chainInput, &BaseChain{"filter", "input", prioFilter},
		rb("workload to host").workloadIf(false).jump(chainWlToHost),
		rb("host endpoint ingress").ifnameVmap(false, mapHepIn))
	chain(chainOutput, &BaseChain{"filter", "output", prioFilter},
		rb("host to workload is not policed").workloadIf(true).verdict(expr.VerdictReturn),
		rb("host endpoint egress").ifnameVmap(true, mapHepOut))
	// Dispatch: one map lookup, then goto the endpoint's chain, whose
	// return goes back to the base chain; an interface in no map is one
	// Calyx does not know (yet): drop.
	chain(chainWlOutDisp, nil,
		rb("dispatch by interface").ifnameVmap(false, mapWlOut),
		rb("unknown calyx interface").verdict(expr.VerdictDrop))
	chain(chainWlInDisp, nil,
		rb("dispatch by interface").ifnameVmap(true, mapWlIn),
		rb("unknown calyx interface").verdict(expr.VerdictDrop))
	toHost := []*ruleBuilder{}
	for _, t := range []uint8{133, 135, 136} { // router solicitation, neighbour solicitation and advertisement
		toHost = append(toHost, rb("neighbour discovery").family(true).l4proto(58, false).icmp(true, false, t, nil).verdict(expr.VerdictAccept))
	}
	toHost = append(toHost, rb("workload egress policy").jump(chainWlOutDisp))
	switch cfg.EndpointToHostAction {
	case "Drop":
		toHost = append(toHost, rb("endpoint to host action Drop").verdict(expr.VerdictDrop))
	case "Return":
		toHost = append(toHost, rb("endpoint to host action Return").verdict(expr.VerdictReturn))
	default:
		toHost = append(toHost, rb("endpoint to host action Accept").verdict(expr.VerdictAccept))
	}
	chain(chainWlToHost, nil, toHost...)

	// NAT.
	dnat := func() []*ruleBuilder {
		return []*ruleBuilder{
			rb("port mappings").family(false).fibDaddrLocal().dnatMap(false, mapDNAT4),
			rb("port mappings").family(true).fibDaddrLocal().dnatMap(true, mapDNAT6),
		}
	}
	chain(chainNATPre, &BaseChain{"nat", "prerouting", prioDstNAT}, dnat()...)
	chain(chainNATOut, &BaseChain{"nat", "output", prioDstNAT}, dnat()...)
	chain(chainNATPost, &BaseChain{"nat", "postrouting", prioSrcNAT},
		rb("no masquerade to workloads").workloadIf(true).verdict(expr.VerdictReturn),
		rb("natOutgoing").family(false).addrInSet(false, false, false, setMasqPools4).addrInSet(false, true, true, setAllPools4).masquerade(),
		rb("natOutgoing").family(true).addrInSet(true, false, false, setMasqPools6).addrInSet(true, true, true, setAllPools6).masquerade())

	f.sets = []*setDef{
		{spec: SetSpec{Name: mapWlOut, Type: MapIfname, Comment: "workload interface to its egress chain"}},
		{spec: SetSpec{Name: mapWlIn, Type: MapIfname, Comment: "workload interface to its ingress chain"}},
		{spec: SetSpec{Name: mapHepIn, Type: MapIfname, Comment: "host endpoint interface to its ingress chain"}},
		{spec: SetSpec{Name: mapHepOut, Type: MapIfname, Comment: "host endpoint interface to its egress chain"}},
		{spec: SetSpec{Name: mapDNAT4, Type: MapDNAT4, Comment: "port mappings"}},
		{spec: SetSpec{Name: mapDNAT6, Type: MapDNAT6, Comment: "port mappings"}},
		addrSet(setMasqPools4, SetAddr4, "pools with natOutgoing", cfg.MasqPools),
		addrSet(setMasqPools6, SetAddr6, "pools with natOutgoing", cfg.MasqPools),
		addrSet(setAllPools4, SetAddr4, "all pools", cfg.AllPools),
		addrSet(setAllPools6, SetAddr6, "all pools", cfg.AllPools),
	}
	return f
}
