package nft

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Fake is an in-memory Kernel. It applies transactions all or nothing,
// refuses what the kernel refuses that matters to the reconciler
// (references to missing chains or sets, deleting what is still referred
// to, conflicting elements) and renders its tables as text close to
// `nft list table`.
type Fake struct {
	mu     sync.Mutex // guards following fields
	tables map[string]*fakeTable
	// Transactions counts successful Run calls; Ops their operations.
	Transactions, Ops int
	// Last holds the ops of the last successful Run.
	Last []Op
	// FailNext, when set, makes the next Run fail with it (and is then
	// cleared), as a kernel refusing a transaction would.
	FailNext error
	// gen is the generation: one step per transaction, the drift
	// helpers' included.
	gen uint32
}

var _ Kernel = (*Fake)(nil)

type fakeTable struct {
	chains map[string]*fakeChain
	sets   map[string]*fakeSet
}

type fakeChain struct {
	spec  ChainSpec
	rules []*Rule
}

type fakeSet struct {
	spec  SetSpec
	elems map[string]Elem
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{tables: map[string]*fakeTable{}} }

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{chains: map[string]*fakeChain{}, sets: map[string]*fakeSet{}}
	for n, ch := range t.chains {
		c.chains[n] = &fakeChain{spec: ch.spec, rules: slices.Clone(ch.rules)}
	}
	for n, s := range t.sets {
		e := make(map[string]Elem, len(s.elems))
		for k, v := range s.elems {
			e[k] = v
		}
		c.sets[n] = &fakeSet{spec: s.spec, elems: e}
	}
	return c
}

// Run implements Kernel.
func (f *Fake) Run(_ context.Context, table string, ops []Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.FailNext; err != nil {
		f.FailNext = nil
		return err
	}
	var t *fakeTable
	if cur, ok := f.tables[table]; ok {
		t = cur.clone()
	}
	for i, op := range ops {
		if op.Kind == OpAddTable {
			if t == nil {
				t = &fakeTable{chains: map[string]*fakeChain{}, sets: map[string]*fakeSet{}}
			}
			continue
		}
		if t == nil {
			return fmt.Errorf("op %d (%s): table %s: no such file or directory", i, op, table)
		}
		if err := t.apply(op); err != nil {
			return fmt.Errorf("op %d (%s): %w", i, op, err)
		}
	}
	if t != nil {
		f.tables[table] = t
	}
	f.Transactions++
	f.Ops += len(ops)
	f.Last = ops
	f.gen++
	return nil
}

// Generation implements Kernel: it steps on every successful Run and
// every change behind the reconciler's back (DeleteChain, DeleteElem).
func (f *Fake) Generation(context.Context) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, nil
}

func (t *fakeTable) refersTo(chain, set string) string {
	for _, c := range t.chains {
		for _, r := range c.rules {
			if chain != "" && slices.Contains(r.Jumps, chain) || set != "" && slices.Contains(r.Sets, set) {
				return "rule in chain " + c.spec.Name
			}
		}
	}
	if chain != "" {
		for _, s := range t.sets {
			for _, e := range s.elems {
				if e.Chain == chain {
					return "element of map " + s.spec.Name
				}
			}
		}
	}
	return ""
}

func (t *fakeTable) apply(op Op) error {
	switch op.Kind {
	case OpAddSet:
		if s, ok := t.sets[op.Set.Name]; ok {
			if s.spec.Type != op.Set.Type {
				return fmt.Errorf("set %s exists with another type: file exists", op.Set.Name)
			}
			return nil
		}
		t.sets[op.Set.Name] = &fakeSet{spec: *op.Set, elems: map[string]Elem{}}
	case OpDelSet:
		if _, ok := t.sets[op.Set.Name]; !ok {
			return fmt.Errorf("set %s: no such file or directory", op.Set.Name)
		}
		if by := t.refersTo("", op.Set.Name); by != "" {
			return fmt.Errorf("set %s is used by a %s: device or resource busy", op.Set.Name, by)
		}
		delete(t.sets, op.Set.Name)
	case OpAddElems, OpDelElems:
		s, ok := t.sets[op.Set.Name]
		if !ok {
			return fmt.Errorf("set %s: no such file or directory", op.Set.Name)
		}
		if len(op.Elems) > maxElemsPerOp {
			return fmt.Errorf("%d elements in one message: message too long", len(op.Elems))
		}
		if n := encodedElemsLen(op.Elems); n > 0xffff {
			return fmt.Errorf("%d bytes of elements in one netlink attribute: its 16-bit length wraps: no such file or directory", n)
		}
		var before []Elem // the set before this op, for interval checks
		if op.Kind == OpAddElems && (s.spec.Type == SetAddr4 || s.spec.Type == SetAddr6) {
			before = sortedElems(s.elems)
		}
		for _, e := range op.Elems {
			cur, exists := s.elems[e.id()]
			if op.Kind == OpDelElems {
				if !exists {
					return fmt.Errorf("element %x of %s: no such file or directory", e.Key, s.spec.Name)
				}
				delete(s.elems, e.id())
				continue
			}
			if exists && cur.value() != e.value() {
				return fmt.Errorf("element %x of %s exists with another value: device or resource busy", e.Key, s.spec.Name)
			}
			if e.End && nextIsEnd(before, e) {
				// The kernel checks each interval element as it is
				// inserted: an end whose next element is an end
				// overlaps an interval. (Elements of one op come in
				// key order, so the next one is from before the op.)
				return fmt.Errorf("interval end %x of %s overlaps: file exists", e.Key, s.spec.Name)
			}
			if e.Chain != "" {
				if _, ok := t.chains[e.Chain]; !ok {
					return fmt.Errorf("element %x of %s: chain %s: no such file or directory", e.Key, s.spec.Name, e.Chain)
				}
			}
			s.elems[e.id()] = e
		}
	case OpAddChain:
		if _, ok := t.chains[op.Chain.Name]; !ok {
			t.chains[op.Chain.Name] = &fakeChain{spec: *op.Chain}
		}
	case OpFlushChain:
		c, ok := t.chains[op.Chain.Name]
		if !ok {
			return fmt.Errorf("chain %s: no such file or directory", op.Chain.Name)
		}
		c.rules = nil
	case OpDelChain:
		c, ok := t.chains[op.Chain.Name]
		if !ok {
			return fmt.Errorf("chain %s: no such file or directory", op.Chain.Name)
		}
		saved := c.rules
		c.rules = nil // its own rules go with it
		if by := t.refersTo(op.Chain.Name, ""); by != "" {
			c.rules = saved
			return fmt.Errorf("chain %s is used by a %s: device or resource busy", op.Chain.Name, by)
		}
		delete(t.chains, op.Chain.Name)
	case OpAddRule:
		c, ok := t.chains[op.Rule.Chain]
		if !ok {
			return fmt.Errorf("chain %s: no such file or directory", op.Rule.Chain)
		}
		for _, j := range op.Rule.Jumps {
			if _, ok := t.chains[j]; !ok {
				return fmt.Errorf("jump to chain %s: no such file or directory", j)
			}
		}
		for _, s := range op.Rule.Sets {
			if _, ok := t.sets[s]; !ok {
				return fmt.Errorf("set %s: no such file or directory", s)
			}
		}
		c.rules = append(c.rules, op.Rule)
	default:
		return fmt.Errorf("unknown op %d", op.Kind)
	}
	return nil
}

// List implements Kernel.
func (f *Fake) List(_ context.Context, table string) (*Listing, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return nil, nil
	}
	l := &Listing{Chains: map[string][]string{}, Sets: map[string][]Elem{}}
	for n, c := range t.chains {
		l.Chains[n] = ruleComments(c.rules)
	}
	for n, s := range t.sets {
		l.Sets[n] = sortedElems(s.elems)
	}
	return l, nil
}

// DeleteChain removes a chain behind the reconciler's back (drift), with
// its rules and the rules and map elements that refer to it.
func (f *Fake) DeleteChain(table, chain string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		return
	}
	f.gen++
	delete(t.chains, chain)
	for _, c := range t.chains {
		c.rules = slices.DeleteFunc(c.rules, func(r *Rule) bool { return slices.Contains(r.Jumps, chain) })
	}
	for _, s := range t.sets {
		for id, e := range s.elems {
			if e.Chain == chain {
				delete(s.elems, id)
			}
		}
	}
}

// DeleteElem removes one element from a set behind the reconciler's back.
func (f *Fake) DeleteElem(table, set string, e Elem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tables[table]; t != nil && t.sets[set] != nil {
		f.gen++
		delete(t.sets[set].elems, e.id())
	}
}

func sortedElems(m map[string]Elem) []Elem {
	out := make([]Elem, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, compareElems)
	return out
}

// Dump renders the table as `nft list table inet NAME` would, with sets
// and chains sorted by name; "" when the table does not exist.
func (f *Fake) Dump(table string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[table]
	if !ok {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", table)
	for _, n := range slices.Sorted(mapKeys(t.sets)) {
		s := t.sets[n]
		kind := "set"
		if s.spec.Type == MapIfname || s.spec.Type == MapDNAT4 || s.spec.Type == MapDNAT6 {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n", kind, n)
		typ, flags, _ := strings.Cut(s.spec.Type.String(), "; ")
		fmt.Fprintf(&b, "\t\t%s\n", typ)
		if flags != "" {
			fmt.Fprintf(&b, "\t\t%s\n", flags)
		}
		if s.spec.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %q\n", s.spec.Comment)
		}
		if elems := renderElems(s.spec.Type, sortedElems(s.elems)); len(elems) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ",\n\t\t\t     "))
		}
		b.WriteString("\t}\n")
	}
	for _, n := range slices.Sorted(mapKeys(t.chains)) {
		c := t.chains[n]
		fmt.Fprintf(&b, "\tchain %s {\n", n)
		if base := c.spec.Base; base != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d; policy accept;\n", base.Type, base.Hook, base.Priority)
		}
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s comment %q\n", r.Text, r.Comment)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func renderElems(typ SetType, elems []Elem) []string {
	var out []string
	switch typ {
	case SetAddr4, SetAddr6:
		for i := 0; i < len(elems); i++ {
			start, _ := netip.AddrFromSlice(elems[i].Key)
			var end netip.Addr // exclusive; invalid: the top
			if i+1 < len(elems) && elems[i+1].End {
				end, _ = netip.AddrFromSlice(elems[i+1].Key)
				i++
			}
			out = append(out, renderRange(start, end))
		}
	case SetAddrPort4, SetAddrPort6:
		for _, e := range elems {
			n := len(e.Key) - 8
			a, _ := netip.AddrFromSlice(e.Key[:n])
			out = append(out, fmt.Sprintf("%s . %s . %d", a, protoName(e.Key[n]), binary.BigEndian.Uint16(e.Key[n+4:])))
		}
	case MapIfname:
		for _, e := range elems {
			out = append(out, fmt.Sprintf("%q : %s %s", strings.TrimRight(string(e.Key), "\x00"), e.Verdict, e.Chain))
		}
	case MapDNAT4, MapDNAT6:
		for _, e := range elems {
			a, _ := netip.AddrFromSlice(e.Val[:len(e.Val)-4])
			out = append(out, fmt.Sprintf("%s . %d : %s . %d", protoName(e.Key[0]), binary.BigEndian.Uint16(e.Key[4:]), a, binary.BigEndian.Uint16(e.Val[len(e.Val)-4:])))
		}
	}
	return out
}

// renderRange prints [start, end) as a prefix when it is one, else as an
// inclusive range.
func renderRange(start, end netip.Addr) string {
	last := end
	if end.IsValid() {
		last = end.Prev()
	} else {
		b := start.AsSlice() // the top of the address space

		for i := range b {
			b[i] = 0xff
		}
		last, _ = netip.AddrFromSlice(b)
	}
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() == start && lastAddr(p) == last {
			if bits == start.BitLen() {
				return start.String()
			}
			return p.String()
		}
	}
	return start.String() + "-" + last.String()
}

// encodedElemsLen is the length of the NFTA_SET_ELEM_LIST_ELEMENTS
// attribute that carries elems (netlink attributes align to 4 bytes).
func encodedElemsLen(elems []Elem) int {
	align := func(n int) int { return (n + 3) &^ 3 }
	total := 4
	for _, e := range elems {
		item := 4 + 4 + align(4+len(e.Key)) // the element, its key, the key's value
		if e.End {
			item += 8
		}
		if e.Chain != "" {
			item += 4 + 4 + 8 + align(4+len(e.Chain)+1) // data, verdict, code, chain
		}
		if len(e.Val) > 0 {
			item += 4 + align(4+len(e.Val))
		}
		total += item
	}
	return total
}

// nextIsEnd reports whether the element after e in sorted is an
// interval end.
func nextIsEnd(sorted []Elem, e Elem) bool {
	i, found := slices.BinarySearchFunc(sorted, e, compareElems)
	if found {
		i++
	}
	return i < len(sorted) && sorted[i].End
}
