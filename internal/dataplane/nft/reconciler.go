package nft

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
	// tiers are the shared tier chains in the kernel and tierRefs how
	// many objects use each.
	tiers    map[string]*chainDef
	tierRefs map[string]int
	// resync is set when a transaction failed: the kernel may differ
	// from frags (that is often why it failed), so the next Apply reads
	// it back and repairs, as Resync does.
	resync bool
	// gen is the kernel's ruleset generation when the reconciler last
	// compared the table with frags or wrote it; genOK says that no
	// transaction but the reconciler's own has happened since it last
	// compared, so that the table holds what frags says (see Unchanged).
	gen   uint32
	genOK bool
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

// elemOps appends kind ops carrying elems, at most maxElemsPerOp and
// maxElemBytesPerOp each.
func elemOps(dst []Op, kind OpKind, spec SetSpec, elems []Elem) []Op {
	for len(elems) > 0 {
		n, size := 0, 0
		for n < len(elems) && n < maxElemsPerOp {
			size += encodedElemsLen(elems[n:n+1]) - 4
			if n > 0 && size > maxElemBytesPerOp {
				break
			}
			n++
		}
		s := spec
		dst = append(dst, Op{Kind: kind, Set: &s, Elems: elems[:n:n]})
		elems = elems[n:]
	}
	return dst
}

// diffElems returns the deletions and additions that turn have into want:
// a merge of the two lists in key order, without maps, since a set of
// 10,000 members changes by one.
func diffElems(spec SetSpec, have, want []Elem) (dels, adds []Op) {
	have, want = sortedByKey(have), sortedByKey(want)
	var del, add []Elem
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		var c int
		switch {
		case i == len(have):
			c = 1
		case j == len(want):
			c = -1
		default:
			c = compareElems(have[i], want[j])
		}
		switch {
		case c < 0:
			del = append(del, have[i])
			i++
		case c > 0:
			add = append(add, want[j])
			j++
		default:
			if !sameValue(have[i], want[j]) {
				del = append(del, have[i])
				add = append(add, want[j])
			}
			i++
			j++
		}
	}
	return elemOps(nil, OpDelElems, spec, del), elemOps(nil, OpAddElems, spec, add)
}

// diffSets returns the ops that turn one version of a set into another.
// Address sets change by whole intervals: the kernel checks each interval
// element as it is inserted, and moving one end of an interval (delete
// end, add end) can meet a state it refuses as an overlap, so a changed
// interval is deleted (start and end) and the new one added, as nft does.
// Only the members that changed are merged and compared (planEdit), and
// kernel elements are built only for the intervals that changed: a
// one-member change of a 10,000-member set stays cheap. nw's intervals
// are those of old, edited once the transaction succeeded (settle).
func diffSets(old, nw *setDef) (dels, adds []Op) {
	if !old.addr || !nw.addr {
		return diffElems(nw.spec, old.elements(), nw.elements())
	}
	gone, came, edit := nw.planEdit(old)
	if edit == nil {
		nw.ranges, nw.merged = old.intervals(), true
	} else {
		nw.edit = edit
	}
	return elemOps(nil, OpDelElems, nw.spec, intervalElems(gone)), elemOps(nil, OpAddElems, nw.spec, intervalElems(came))
}

// diffIntervals is diffSets for a set read from the kernel, which may
// hold anything (drift): its elements are grouped into intervals (a start
// and the end after it; a lone element is an interval of its own), and
// intervals that differ are deleted whole and added whole.
func diffIntervals(spec SetSpec, have, want []Elem) (dels, adds []Op) {
	hu, wu := intervalUnits(sortedByKey(have)), intervalUnits(sortedByKey(want))
	wantIDs := make(map[string]bool, len(wu))
	for _, u := range wu {
		wantIDs[unitID(u)] = true
	}
	haveIDs := make(map[string]bool, len(hu))
	var del, add []Elem
	for _, u := range hu {
		haveIDs[unitID(u)] = true
		if !wantIDs[unitID(u)] {
			del = append(del, u...)
		}
	}
	for _, u := range wu {
		if !haveIDs[unitID(u)] {
			add = append(add, u...)
		}
	}
	return elemOps(nil, OpDelElems, spec, del), elemOps(nil, OpAddElems, spec, add)
}

func intervalUnits(sorted []Elem) [][]Elem {
	var units [][]Elem
	for i := 0; i < len(sorted); i++ {
		if !sorted[i].End && i+1 < len(sorted) && sorted[i+1].End {
			units = append(units, sorted[i:i+2:i+2])
			i++
			continue
		}
		units = append(units, sorted[i:i+1:i+1])
	}
	return units
}

func unitID(u []Elem) string {
	id := ""
	for _, e := range u {
		id += e.id() + "\x01"
	}
	return id
}

func sameValue(a, b Elem) bool {
	return a.Verdict == b.Verdict && a.Chain == b.Chain && bytes.Equal(a.Val, b.Val)
}

func compareElems(a, b Elem) int {
	if c := bytes.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	switch {
	case a.End == b.End:
		return 0
	case b.End:
		return -1
	}
	return 1
}

// sortedByKey returns elems in key order, copying only when they are not.
func sortedByKey(elems []Elem) []Elem {
	if slices.IsSortedFunc(elems, compareElems) {
		return elems
	}
	out := slices.Clone(elems)
	slices.SortFunc(out, compareElems)
	return out
}

func ruleComments(rules []*Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Comment
	}
	return out
}

// slim drops the fragment's programmed rules, keeping for each chain the
// digest of their comments. Only the transaction writing a rule uses it;
// after that the reconciler compares a chain with a new rendering by its
// comments, and writes a changed chain from the new rendering. At 1,000
// endpoints and 1,000 policies the rules were the largest part of what the
// reconciler keeps.
func (f *fragment) slim() {
	for _, cs := range [][]*chainDef{f.chains, f.tiers} {
		for _, c := range cs {
			if !c.slim {
				c.sum, c.slim, c.rules = commentsDigest(c.rules), true, nil
			}
		}
	}
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
// the Reconciler its memory of it, and the next Apply retries as a
// Resync (reading the kernel back), since drift is a common cause.
func (r *Reconciler) Apply(ctx context.Context, s *calc.State, d calc.Delta) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frags == nil || r.resync {
		return r.resyncLocked(ctx, s)
	}
	keys := deltaKeys(d)
	if d.Config {
		// Host endpoints carry the failsafe ports.
		var heps []string
		for k := range r.frags {
			if len(k) > len(prefixHep) && k[:len(prefixHep)] == prefixHep {
				heps = append(heps, k)
			}
		}
		slices.Sort(heps)
		keys = append(keys, heps...)
		for n := range s.HostEndpoints {
			keys = append(keys, prefixHep+n)
		}
	}
	keys = dedupe(keys)
	p := &plan{}
	next := make(map[string]*fragment, len(keys))
	owner := newOwnerTx(r.owner)
	// refs counts the users each tier chain gains (or loses) here; used
	// are the tier chains the new fragments go to.
	refs := map[string]int{}
	used := map[string]*chainDef{}
	for _, key := range keys {
		nf := r.rd.render(s, key)
		next[key] = nf
		if old := r.frags[key]; old != nil {
			for _, t := range old.tiers {
				refs[t.spec.Name]--
			}
		}
		if nf != nil {
			for i, t := range nf.tiers {
				// A tier chain's name derives from all it holds: keep one
				// copy per name, not one per endpoint that uses it.
				if cur := r.tiers[t.spec.Name]; cur != nil {
					nf.tiers[i] = cur
				} else if cur := used[t.spec.Name]; cur != nil {
					nf.tiers[i] = cur
				}
				refs[t.spec.Name]++
				used[t.spec.Name] = nf.tiers[i]
			}
		}
		r.diffFragment(p, key, r.frags[key], nf, owner)
	}
	// Shared tier chains: create those that gained their first user,
	// delete those that lost their last (after the map elements going to
	// them, which the plan orders first).
	touched := slices.Sorted(mapKeys(refs))
	added, removed := map[string]*chainDef{}, []string{}
	for _, name := range touched {
		if r.tierRefs[name]+refs[name] > 0 && r.tiers[name] == nil {
			c := used[name]
			spec := c.spec
			p.addChains = append(p.addChains, Op{Kind: OpAddChain, Chain: &spec})
			p.writeChain(c, false)
			added[name] = c
		}
	}
	for _, name := range touched {
		if r.tierRefs[name]+refs[name] <= 0 {
			if c := r.tiers[name]; c != nil {
				spec := c.spec
				p.rules = append(p.rules, Op{Kind: OpFlushChain, Chain: &spec})
				p.delChains = append(p.delChains, Op{Kind: OpDelChain, Chain: &spec})
				removed = append(removed, name)
			}
		}
	}
	ops := p.ops(false)
	if len(ops) == 0 {
		return nil
	}
	if err := r.k.Run(ctx, r.table, ops); err != nil {
		r.resync = true
		return fmt.Errorf("applying %d changed objects (%s) to table inet %s: %w", len(keys), describeOps(ops), r.table, err)
	}
	r.wroteLocked(ctx)
	for key, f := range next {
		if f == nil {
			delete(r.frags, key)
			continue
		}
		for _, st := range f.sets {
			st.settle()
		}
		f.slim()
		r.frags[key] = f
	}
	owner.commit()
	for _, name := range touched {
		if n := r.tierRefs[name] + refs[name]; n > 0 {
			r.tierRefs[name] = n
		} else {
			delete(r.tierRefs, name)
		}
	}
	maps.Copy(r.tiers, added)
	for _, name := range removed {
		delete(r.tiers, name)
	}
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

// ownerTx is the owner map as a transaction changes it: changes are kept
// aside and written to the Reconciler's map by commit, once the
// transaction succeeded, so a change costs what it changes, not the size
// of the map.
type ownerTx struct {
	base map[string]map[string]string
	// changes[set][id] is the new owner; "" when released.
	changes map[string]map[string]string
}

func newOwnerTx(o map[string]map[string]string) *ownerTx {
	return &ownerTx{base: o, changes: map[string]map[string]string{}}
}

func (o *ownerTx) get(set, id string) string {
	if key, ok := o.changes[set][id]; ok {
		return key
	}
	return o.base[set][id]
}

// set records that key owns the element (nothing does when key is "").
func (o *ownerTx) set(set, id, key string) {
	if o.changes[set] == nil {
		o.changes[set] = map[string]string{}
	}
	o.changes[set][id] = key
}

// commit writes the changes to the base map.
func (o *ownerTx) commit() {
	for set, ids := range o.changes {
		m := o.base[set]
		if m == nil {
			m = map[string]string{}
			o.base[set] = m
		}
		for id, key := range ids {
			if key == "" {
				delete(m, id)
			} else {
				m[id] = key
			}
		}
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
			dels, adds := diffSets(o, s)
			p.setElems = append(append(p.setElems, dels...), adds...)
			continue
		}
		spec := s.spec
		p.addSets = append(p.addSets, Op{Kind: OpAddSet, Set: &spec})
		p.setElems = elemOps(p.setElems, OpAddElems, s.spec, s.elements())
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
		if ok && o.digest() == c.digest() {
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

// Unchanged reports whether nothing has changed nftables since the
// reconciler last compared its table with the kernel, but its own
// transactions: then the table holds what the reconciler last programmed
// and a Resync of the same state would find nothing to repair. It costs
// one netlink request (the ruleset's generation), where a Resync renders
// and lists the whole table: a periodic resync asks it first. Any change
// by anyone (`nft`, another program, another table) makes it false until
// the next Resync.
func (r *Reconciler) Unchanged(ctx context.Context) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frags == nil || r.resync || !r.genOK {
		return false
	}
	g, err := r.k.Generation(ctx)
	return err == nil && g == r.gen
}

// wroteLocked notes the generation after a transaction of the
// reconciler's own: the kernel steps it by one per transaction, so any
// other step means someone else changed nftables meanwhile.
func (r *Reconciler) wroteLocked(ctx context.Context) {
	g, err := r.k.Generation(ctx)
	r.genOK = r.genOK && err == nil && g == nextGen(r.gen)
	r.gen = g
}

// nextGen is the generation after g: the kernel skips 0 when it wraps.
func nextGen(g uint32) uint32 {
	if g == ^uint32(0) {
		return 1
	}
	return g + 1
}

func (r *Reconciler) resyncLocked(ctx context.Context, s *calc.State) error {
	// The generation before the listing: a change after it shows as a
	// newer one.
	gen, genErr := r.k.Generation(ctx)
	frags := map[string]*fragment{}
	owner := map[string]map[string]string{}
	tiers, tierRefs := map[string]*chainDef{}, map[string]int{}
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
		for i, c := range f.tiers {
			if cur := tiers[c.spec.Name]; cur != nil {
				f.tiers[i] = cur // one copy per name (see Apply)
			} else {
				chains[c.spec.Name], tiers[c.spec.Name] = c, c
			}
			tierRefs[c.spec.Name]++
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
		want := append(slices.Clone(st.elements()), shared[name]...)
		cur, ok := have.Sets[name]
		if !ok {
			spec := st.spec
			p.addSets = append(p.addSets, Op{Kind: OpAddSet, Set: &spec})
		}
		var dels, adds []Op
		if st.addr {
			dels, adds = diffIntervals(st.spec, cur, want)
		} else {
			dels, adds = diffElems(st.spec, cur, want)
		}
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
	r.gen, r.genOK = gen, genErr == nil
	if len(ops) > 0 {
		if err := r.k.Run(ctx, r.table, ops); err != nil {
			r.resync = true
			return fmt.Errorf("repairing table inet %s (%s): %w", r.table, describeOps(ops), err)
		}
		r.wroteLocked(ctx)
		r.log.Info("nft: resync repaired the table", "table", r.table, "ops", describeOps(ops))
	}
	for _, f := range frags {
		f.slim()
	}
	r.frags, r.owner, r.resync = frags, owner, false
	r.tiers, r.tierRefs = tiers, tierRefs
	return nil
}
