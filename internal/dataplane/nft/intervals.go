package nft

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
)

// An address set changes by a few members at a time out of thousands, so
// a change is planned from the members that changed, not from the whole
// set: the old and new prefix lists (both sorted, as calc hands them) are
// walked once, which compares but allocates only for differences; each
// changed prefix's span is widened by the programmed intervals it
// overlaps or touches (merging can join neighbours, and removing a member
// can split an interval), and only inside those windows are the new
// intervals merged and compared with the old ones. The programmed
// intervals are then edited in place once the transaction succeeded.

// familyPrefixes splits ps into IPv4 and IPv6 prefixes (an IPv4-mapped
// address is IPv6, as netip.Addr.Is4 says), each masked and sorted by
// comparePrefixes, invalid ones dropped. When ps already is (calc sorts
// and masks), both are sub-slices of ps: no copy.
func familyPrefixes(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	if !normalized(ps) {
		ps = sortedPrefixes(ps)
	}
	// Addr.Compare orders by bit length first: IPv4 before IPv6.
	k := sort.Search(len(ps), func(i int) bool { return !ps[i].Addr().Is4() })
	return ps[:k:k], ps[k:len(ps):len(ps)]
}

// normalized reports whether ps are valid, masked and sorted by
// comparePrefixes. It runs over every member of a set rendered afresh
// (Resync, a new set), so it compares integers rather than calling Masked
// and Compare; a changed set is checked by changedSince instead.
func normalized(ps []netip.Prefix) bool {
	var prevLen, prevBits int
	var prevHi, prevLo uint64
	for i, p := range ps {
		if !p.IsValid() {
			return false
		}
		a := p.Addr()
		if a.Zone() != "" {
			return false
		}
		b := a.As16()
		hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		n, bits := a.BitLen(), p.Bits()
		if host := uint(n - bits); host >= 64 {
			if lo != 0 || hi&(1<<(host-64)-1) != 0 {
				return false
			}
		} else if lo&(1<<host-1) != 0 {
			return false
		}
		if i > 0 {
			switch {
			case n != prevLen:
				if n < prevLen {
					return false
				}
			case hi != prevHi:
				if hi < prevHi {
					return false
				}
			case lo != prevLo:
				if lo < prevLo {
					return false
				}
			case bits < prevBits:
				return false
			}
		}
		prevLen, prevHi, prevLo, prevBits = n, hi, lo, bits
	}
	return true
}

// prefixRange is the range a prefix covers.
func prefixRange(p netip.Prefix) addrRange {
	return addrRange{p.Addr(), lastAddr(p).Next()}
}

// beyond reports whether address a lies after the end of a range ending
// at end (exclusive; invalid is the top of the space) and does not touch
// it.
func beyond(a, end netip.Addr) bool {
	return end.IsValid() && a.Compare(end) > 0
}

// reaches reports whether a range ending at end (exclusive) reaches or
// touches address a.
func reaches(end, a netip.Addr) bool {
	return !end.IsValid() || end.Compare(a) >= 0
}

// laterEnd returns the later of two exclusive ends.
func laterEnd(a, b netip.Addr) netip.Addr {
	if !a.IsValid() || !b.IsValid() {
		return netip.Addr{}
	}
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// changedSpans returns the ranges of the prefixes that are in one of two
// sorted lists and not the other, ordered by start.
func changedSpans(old, nw []netip.Prefix) []addrRange {
	if len(old) == len(nw) && (len(old) == 0 || &old[0] == &nw[0]) {
		return nil
	}
	var spans []addrRange
	i, j := 0, 0
	for i < len(old) || j < len(nw) {
		if i < len(old) && j < len(nw) && old[i] == nw[j] {
			i++
			j++
			continue
		}
		switch {
		case j == len(nw) || i < len(old) && comparePrefixes(old[i], nw[j]) < 0:
			spans = append(spans, prefixRange(old[i]))
			i++
		default:
			spans = append(spans, prefixRange(nw[j]))
			j++
		}
	}
	return spans
}

// changedSince returns the spans where d's members differ from old (the
// previous version's family members), setting d's family members. calc's
// members are sorted and masked, and those in old were checked before,
// so the walk checks only the members that are not in old: a member in
// both is valid, masked and of the family, and two adjacent members both
// in old are in order (the walk matches them in old's order), so any
// disorder sits next to a member that is not. Members found out of order
// fall back to family and changedSpans.
func (d *setDef) changedSince(old []netip.Prefix) []addrRange {
	if d.famDone {
		return changedSpans(old, d.prefixes)
	}
	raw := d.raw
	// The family's members are raw[lo:hi]: IPv4 first (Addr.Compare
	// orders by bit length), then IPv6.
	lo, hi := 0, 0
	for hi < len(raw) && raw[hi].Addr().Is4() {
		hi++
	}
	if d.v6 {
		lo, hi = hi, len(raw)
	} else {
		// An IPv4 member after an IPv6 one: out of order, and not in
		// raw[lo:hi].
		for _, p := range raw[hi:] {
			if p.Addr().Is4() {
				return changedSpans(old, d.family())
			}
		}
	}
	fam := raw[lo:hi:hi]
	member := func(j int) bool {
		p := fam[j]
		return p.IsValid() && p.Addr().Is4() != d.v6 && p.Addr().Zone() == "" && p == p.Masked() &&
			(j == 0 || comparePrefixes(fam[j-1], p) <= 0) && (j+1 == len(fam) || comparePrefixes(p, fam[j+1]) <= 0)
	}
	var spans []addrRange
	i, j := 0, 0
	for i < len(old) || j < len(fam) {
		if i < len(old) && j < len(fam) && old[i] == fam[j] {
			i++
			j++
			continue
		}
		if j < len(fam) && !member(j) {
			return changedSpans(old, d.family())
		}
		switch {
		case j == len(fam) || i < len(old) && comparePrefixes(old[i], fam[j]) < 0:
			spans = append(spans, prefixRange(old[i]))
			i++
		default:
			spans = append(spans, prefixRange(fam[j]))
			j++
		}
	}
	d.prefixes, d.famDone = fam, true
	return spans
}

// rangeEdit is how a set's intervals follow from an older version's: in
// base, each window's [lo, hi) is replaced by its ranges.
type rangeEdit struct {
	base    []addrRange
	windows []rangeWindow
}

type rangeWindow struct {
	lo, hi int
	ranges []addrRange
}

// maxInPlaceWindows bounds the windows apply edits in place, each moving
// the tail of the slice; more are applied by one copy.
const maxInPlaceWindows = 8

// apply returns the edited intervals, overwriting base when inPlace (once
// nothing needs the older version any more).
func (e *rangeEdit) apply(inPlace bool) []addrRange {
	if inPlace && len(e.windows) <= maxInPlaceWindows {
		out := e.base
		for i := len(e.windows) - 1; i >= 0; i-- {
			w := e.windows[i]
			out = slices.Replace(out, w.lo, w.hi, w.ranges...)
		}
		return out
	}
	n := len(e.base)
	for _, w := range e.windows {
		n += len(w.ranges) - (w.hi - w.lo)
	}
	out, prev := make([]addrRange, 0, n), 0
	for _, w := range e.windows {
		out = append(append(out, e.base[prev:w.lo]...), w.ranges...)
		prev = w.hi
	}
	return append(out, e.base[prev:]...)
}

// planEdit computes d's intervals from old's: the intervals to delete and
// to add, and the edit that turns old's intervals into d's (nil when they
// are the same). Both must be address sets.
func (d *setDef) planEdit(old *setDef) (gone, came []addrRange, edit *rangeEdit) {
	base := old.intervals()
	spans := d.changedSince(old.family())
	if len(spans) == 0 {
		return nil, nil, nil
	}
	edit = &rangeEdit{base: base}
	k, j := 0, 0 // next old interval and new prefix to consider
	for s := 0; s < len(spans); {
		wlo, whi := spans[s].start, spans[s].end
		s++
		// The first old interval reaching the span, which may start
		// before it; then every old interval and span that touches the
		// window, until neither does.
		lo := k + sort.Search(len(base)-k, func(i int) bool { return reaches(base[k+i].end, wlo) })
		if lo < len(base) && base[lo].start.Less(wlo) {
			wlo = base[lo].start
		}
		hi := lo
		for {
			if hi < len(base) && !beyond(base[hi].start, whi) {
				whi = laterEnd(whi, base[hi].end)
				hi++
				continue
			}
			if s < len(spans) && !beyond(spans[s].start, whi) {
				whi = laterEnd(whi, spans[s].end)
				s++
				continue
			}
			break
		}
		k = hi
		// Neither wlo-1 nor whi is covered, before or after: the new
		// prefixes starting in [wlo, whi) are those in the window, and
		// their intervals are the window's.
		ps := d.prefixes[j:]
		j0 := sort.Search(len(ps), func(i int) bool { return ps[i].Addr().Compare(wlo) >= 0 })
		j1 := len(ps)
		if whi.IsValid() {
			j1 = j0 + sort.Search(len(ps)-j0, func(i int) bool { return ps[j0+i].Addr().Compare(whi) >= 0 })
		}
		j += j1
		merged := mergeSorted(ps[j0:j1])
		g, c := diffRanges(base[lo:hi], merged)
		if len(g) == 0 && len(c) == 0 {
			continue
		}
		gone, came = append(gone, g...), append(came, c...)
		edit.windows = append(edit.windows, rangeWindow{lo: lo, hi: hi, ranges: merged})
	}
	if len(edit.windows) == 0 {
		return nil, nil, nil
	}
	return gone, came, edit
}

// diffRanges returns the ranges of old not in nw and of nw not in old,
// both sorted by start.
func diffRanges(old, nw []addrRange) (gone, came []addrRange) {
	i, j := 0, 0
	for i < len(old) || j < len(nw) {
		switch {
		case j == len(nw) || i < len(old) && old[i].start.Less(nw[j].start):
			gone = append(gone, old[i])
			i++
		case i == len(old) || nw[j].start.Less(old[i].start):
			came = append(came, nw[j])
			j++
		default:
			if old[i] != nw[j] {
				gone = append(gone, old[i])
				came = append(came, nw[j])
			}
			i++
			j++
		}
	}
	return gone, came
}
