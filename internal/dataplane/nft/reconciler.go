package nft

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"

	"github.com/calyx-net/calyx/internal/calc"
)

// Options configure a Reconciler; the zero value is usable.
type Options struct {
	// Table is the name of Calyx's inet table; DefaultTable when empty.
	Table string
	// Logger receives warnings; discarded when nil.
	Logger *slog.Logger
	// MarkAccept and MarkPass are the mark bits for a policy's Allow and
	// Pass; DefaultMarkAccept and DefaultMarkPass when zero.
	MarkAccept, MarkPass uint32
}

// Reconciler programs a calc.State into Calyx's nftables table.
type Reconciler struct {
	k     Kernel
	table string
	log   *slog.Logger
	rd    renderer

	mu sync.Mutex // guards following fields
	// frags is what the kernel holds, by object key, as last programmed;
	// nil until the first successful Resync.
	frags map[string]*fragment
	// owner says which object put each element of a shared map:
	// owner[set][elem id] = object key.
	owner map[string]map[string]string
}

// New returns a Reconciler writing through k. It writes nothing until the
// first Apply or Resync.
func New(k Kernel, opts Options) *Reconciler {
	r := &Reconciler{k: k, table: opts.Table, log: opts.Logger, rd: renderer{markAccept: opts.MarkAccept, markPass: opts.MarkPass}}
	if r.table == "" {
		r.table = DefaultTable
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.rd.markAccept == 0 {
		r.rd.markAccept = DefaultMarkAccept
	}
	if r.rd.markPass == 0 {
		r.rd.markPass = DefaultMarkPass
	}
	return r
}

// Validate reports an unusable Options value.
func (o Options) Validate() error {
	for _, m := range []struct {
		name string
		v    uint32
	}{{"MarkAccept", o.MarkAccept}, {"MarkPass", o.MarkPass}} {
		if m.v != 0 && m.v&(m.v-1) != 0 {
			return fmt.Errorf("nft options: %s 0x%08x: expected a single bit", m.name, m.v)
		}
	}
	if o.MarkAccept != 0 && o.MarkAccept == o.MarkPass {
		return fmt.Errorf("nft options: MarkAccept and MarkPass are both 0x%08x: expected two different bits", o.MarkAccept)
	}
	return nil
}

// plan collects a transaction's ops by phase, so that every object exists
// before anything refers to it and is deleted only after nothing does.
type plan struct {
	addSets, setElems, addChains, delShared, rules, addShared, delChains, delSets []Op
}

func (p *plan) ops(addTable bool) []Op {
	var ops []Op
	if addTable {
		ops = append(ops, Op{Kind: OpAddTable})
	}
	for _, ph := range [][]Op{p.addSets, p.setElems, p.addChains, p.delShared, p.rules, p.addShared, p.delChains, p.delSets} {
		ops = append(ops, ph...)
	}
	return ops
}

// elemOps appends kind ops carrying elems, at most maxElemsPerOp each.
func elemOps(dst []Op, kind OpKind, spec SetSpec, elems []Elem) []Op {
	for len(elems) > 0 {
		n := min(len(elems), maxElemsPerOp)
		s := spec
		dst = append(dst, Op{Kind: kind, Set: &s, Elems: elems[:n:n]})
		elems = elems[n:]
	}
	return dst
}

// diffElems returns the deletions and additions that turn have into want.
func diffElems(spec SetSpec, have, want []Elem) (dels, adds []Op) {
	haveBy := make(map[string]Elem, len(have))
	for _, e := range have {
		haveBy[e.id()] = e
	}
	var del, add []Elem
	wantIDs := make(map[string]bool, len(want))
	for _, e := range want {
		wantIDs[e.id()] = true
		h, ok := haveBy[e.id()]
		if ok && h.value() == e.value() {
			continue
		}
		if ok {
			del = append(del, h)
		}
		add = append(add, e)
	}
	for _, e := range have {
		if !wantIDs[e.id()] {
			del = append(del, e)
		}
	}
	return elemOps(nil, OpDelElems, spec, del), elemOps(nil, OpAddElems, spec, add)
}

func ruleComments(rules []*Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Comment
	}
	return out
}

func (p *plan) writeChain(c *chainDef, flush bool) {
	spec := c.spec
	if flush {
		p.rules = append(p.rules, Op{Kind: OpFlushChain, Chain: &spec})
	}
	for _, r := range c.rules {
		p.rules = append(p.rules, Op{Kind: OpAddRule, Rule: r})
	}
}

// Apply programs the objects d names, comparing each with what it last
// programmed, in one transaction. Before the first Resync it runs one.
// When the transaction fails, the kernel keeps its previous ruleset and
// the Reconciler its memory of it, so the next Apply or Resync retries.
func (r *Reconciler) Apply(ctx context.Context, s *calc.State, d calc.Delta) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frags == nil {
		return r.resyncLocked(ctx, s)
	}
	keys := deltaKeys(d)
	if d.Config {
		// Host endpoints carry the failsafe ports.
		for _, k := range slices.Sorted(mapKeys(r.frags)) {
			if len(k) > len(prefixHep) && k[:len(prefixHep)] == prefixHep {
				keys = append(keys, k)
			}
		}
		for n := range s.HostEndpoints {
			keys = append(keys, prefixHep+n)
		}
	}
	keys = dedupe(keys)
	p := &plan{}
	next := make(map[string]*fragment, len(keys))
	owner := newOwnerTx(r.owner)
	for _, key := range keys {
		nf := r.rd.render(s, key)
		next[key] = nf
		r.diffFragment(p, key, r.frags[key], nf, owner)
	}
	ops := p.ops(false)
	if len(ops) == 0 {
		return nil
	}
	if err := r.k.Run(ctx, r.table, ops); err != nil {
		return fmt.Errorf("applying %d changed objects (%s) to table inet %s: %w", len(keys), describeOps(ops), r.table, err)
	}
	for key, f := range next {
		if f == nil {
			delete(r.frags, key)
		} else {
			r.frags[key] = f
		}
	}
	r.owner = owner.m
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func dedupe(keys []string) []string {
	seen := map[string]bool{}
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// ownerTx is the owner map as a transaction changes it: sets are copied
// on first write, so the Reconciler's map stays as it was until the
// transaction succeeded.
type ownerTx struct {
	m      map[string]map[string]string
	copied map[string]bool
}

func newOwnerTx(o map[string]map[string]string) *ownerTx {
	m := make(map[string]map[string]string, len(o))
	for set, ids := range o {
		m[set] = ids
	}
	return &ownerTx{m: m, copied: map[string]bool{}}
}

func (o *ownerTx) get(set, id string) string { return o.m[set][id] }

func (o *ownerTx) set(set, id, key string) {
	if !o.copied[set] {
		c := make(map[string]string, len(o.m[set])+1)
		for k, v := range o.m[set] {
			c[k] = v
		}
		o.m[set] = c
		o.copied[set] = true
	}
	if key == "" {
		delete(o.m[set], id)
	} else {
		o.m[set][id] = key
	}
}

// diffFragment plans the change of one object from old to nf (either may
// be nil).
func (r *Reconciler) diffFragment(p *plan, key string, old, nf *fragment, owner *ownerTx) {
	if old == nil {
		old = &fragment{}
	}
	if nf == nil {
		nf = &fragment{}
	}
	// Owned sets.
	oldSets := map[string]*setDef{}
	for _, s := range old.sets {
		oldSets[s.spec.Name] = s
	}
	newSets := map[string]bool{}
	for _, s := range nf.sets {
		newSets[s.spec.Name] = true
		if o, ok := oldSets[s.spec.Name]; ok {
			dels, adds := diffElems(s.spec, o.elems, s.elems)
			p.setElems = append(append(p.setElems, dels...), adds...)
			continue
		}
		spec := s.spec
		p.addSets = append(p.addSets, Op{Kind: OpAddSet, Set: &spec})
		p.setElems = elemOps(p.setElems, OpAddElems, s.spec, s.elems)
	}
	for _, s := range old.sets {
		if !newSets[s.spec.Name] {
			spec := s.spec
			p.delSets = append(p.delSets, Op{Kind: OpDelSet, Set: &spec})
		}
	}
	// Owned chains.
	oldChains := map[string]*chainDef{}
	for _, c := range old.chains {
		oldChains[c.spec.Name] = c
	}
	newChains := map[string]bool{}
	for _, c := range nf.chains {
		newChains[c.spec.Name] = true
		o, ok := oldChains[c.spec.Name]
		if ok && slices.Equal(ruleComments(o.rules), ruleComments(c.rules)) {
			continue
		}
		if !ok {
			spec := c.spec
			p.addChains = append(p.addChains, Op{Kind: OpAddChain, Chain: &spec})
		}
		p.writeChain(c, ok)
	}
	for _, c := range old.chains {
		if !newChains[c.spec.Name] {
			spec := c.spec
			p.rules = append(p.rules, Op{Kind: OpFlushChain, Chain: &spec})
			p.delChains = append(p.delChains, Op{Kind: OpDelChain, Chain: &spec})
		}
	}
	// Elements of shared maps.
	wantBy := map[string]sharedElem{}
	for _, e := range nf.elems {
		wantBy[e.set+"\x00"+e.elem.id()] = e
	}
	var del, add []sharedElem
	for _, e := range old.elems {
		w, ok := wantBy[e.set+"\x00"+e.elem.id()]
		if ok && w.elem.value() == e.elem.value() {
			continue
		}
		if owner.get(e.set, e.elem.id()) == key {
			del = append(del, e)
			owner.set(e.set, e.elem.id(), "")
		}
	}
	for _, e := range nf.elems {
		switch o := owner.get(e.set, e.elem.id()); {
		case o == key:
			continue // unchanged (a changed one was released above)
		case o != "":
			r.log.Warn("nft: element already programmed for another object; skipped", "map", e.set, "object", key, "owner", o)
			continue
		}
		add = append(add, e)
		owner.set(e.set, e.elem.id(), key)
	}
	for _, e := range del {
		p.delShared = elemOps(p.delShared, OpDelElems, SetSpec{Name: e.set}, []Elem{e.elem})
	}
	for _, e := range add {
		p.addShared = elemOps(p.addShared, OpAddElems, SetSpec{Name: e.set}, []Elem{e.elem})
	}
}

// Resync reads the kernel's table and repairs any difference from s in
// one transaction, without flushing the table: rules that already match
// stay in place, so established flows never drop and nothing the policy
// denies is ever allowed. Run at start (adopting the table a previous
// calyx-node left) and periodically. An unchanged table writes nothing.
func (r *Reconciler) Resync(ctx context.Context, s *calc.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncLocked(ctx, s)
}

func (r *Reconciler) resyncLocked(ctx context.Context, s *calc.State) error {
	frags := map[string]*fragment{}
	owner := map[string]map[string]string{}
	chains := map[string]*chainDef{}
	sets := map[string]*setDef{}
	shared := map[string][]Elem{}
	for _, key := range allKeys(s) {
		f := r.rd.render(s, key)
		if f == nil {
			continue
		}
		frags[key] = f
		for _, c := range f.chains {
			chains[c.spec.Name] = c
		}
		for _, st := range f.sets {
			sets[st.spec.Name] = st
		}
		kept := f.elems[:0:0]
		for _, e := range f.elems {
			id := e.elem.id()
			if o, ok := owner[e.set][id]; ok {
				r.log.Warn("nft: element already programmed for another object; skipped", "map", e.set, "object", key, "owner", o)
				continue
			}
			if owner[e.set] == nil {
				owner[e.set] = map[string]string{}
			}
			owner[e.set][id] = key
			shared[e.set] = append(shared[e.set], e.elem)
			kept = append(kept, e)
		}
		f.elems = kept
	}
	have, err := r.k.List(ctx, r.table)
	if err != nil {
		return fmt.Errorf("reading table inet %s: %w", r.table, err)
	}
	addTable := have == nil
	if have == nil {
		have = &Listing{}
	}
	p := &plan{}
	for _, name := range slices.Sorted(mapKeys(sets)) {
		st := sets[name]
		want := append(slices.Clone(st.elems), shared[name]...)
		cur, ok := have.Sets[name]
		if !ok {
			spec := st.spec
			p.addSets = append(p.addSets, Op{Kind: OpAddSet, Set: &spec})
		}
		dels, adds := diffElems(st.spec, cur, want)
		if st.spec.Type == MapIfname {
			// Verdict elements refer to chains: add them once the
			// chains exist, delete them before the chains go.
			p.delShared = append(p.delShared, dels...)
			p.addShared = append(p.addShared, adds...)
		} else {
			p.setElems = append(append(p.setElems, dels...), adds...)
		}
	}
	for _, name := range slices.Sorted(mapKeys(chains)) {
		c := chains[name]
		cur, ok := have.Chains[name]
		if ok && slices.Equal(cur, ruleComments(c.rules)) {
			continue
		}
		if !ok {
			spec := c.spec
			p.addChains = append(p.addChains, Op{Kind: OpAddChain, Chain: &spec})
		}
		p.writeChain(c, ok)
	}
	for _, name := range slices.Sorted(mapKeys(have.Chains)) {
		if _, ok := chains[name]; !ok {
			spec := ChainSpec{Name: name}
			p.rules = append(p.rules, Op{Kind: OpFlushChain, Chain: &spec})
			p.delChains = append(p.delChains, Op{Kind: OpDelChain, Chain: &spec})
		}
	}
	for _, name := range slices.Sorted(mapKeys(have.Sets)) {
		if _, ok := sets[name]; !ok {
			p.delSets = append(p.delSets, Op{Kind: OpDelSet, Set: &SetSpec{Name: name}})
		}
	}
	ops := p.ops(addTable)
	if len(ops) > 0 {
		if err := r.k.Run(ctx, r.table, ops); err != nil {
			return fmt.Errorf("repairing table inet %s (%s): %w", r.table, describeOps(ops), err)
		}
		r.log.Info("nft: resync repaired the table", "table", r.table, "ops", describeOps(ops))
	}
	r.frags, r.owner = frags, owner
	return nil
}

// Programmed returns the names of the chains the Reconciler believes the
// kernel holds, sorted: for tests and diagnostics.
func (r *Reconciler) Programmed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.frags {
		for _, c := range f.chains {
			out = append(out, c.spec.Name)
		}
	}
	sort.Strings(out)
	return out
}
