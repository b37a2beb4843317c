package nft

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Registers: reg1 is the 16-byte register every simple match loads into;
// concatenations use the 32-bit registers from reg32_00 on, as nft does.
const (
	reg1    = 1
	reg32_0 = 8
)

// ruleBuilder builds a rule's text and expressions side by side, so that
// what the Fake renders and what the kernel runs come from one place.
type ruleBuilder struct {
	label string // starts the comment
	text  []string
	exprs []expr.Any
	jumps []string
	sets  []string
}

func (b *ruleBuilder) add(text string, e ...expr.Any) *ruleBuilder {
	b.text = append(b.text, text)
	b.exprs = append(b.exprs, e...)
	return b
}

// rule finishes the rule; label starts its comment.
func (b *ruleBuilder) rule(chain, label string) *Rule {
	text := strings.Join(b.text, " ")
	sum := sha256.Sum256([]byte(chain + "\x00" + text))
	hash := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
	comment := hash
	if label != "" {
		comment = label + " " + hash
	}
	return &Rule{Chain: chain, Comment: comment, Text: text, Exprs: b.exprs, Jumps: b.jumps, Sets: b.sets}
}

func cmpOp(neg bool) expr.CmpOp {
	if neg {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func neqText(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

// workloadIf matches an input or output interface whose name starts with
// workloadIfPrefix (the comparison covers only the prefix's bytes).
func (b *ruleBuilder) workloadIf(out bool) *ruleBuilder {
	key, word := expr.MetaKeyIIFNAME, "iifname"
	if out {
		key, word = expr.MetaKeyOIFNAME, "oifname"
	}
	return b.add(fmt.Sprintf("%s %q", word, workloadIfPrefix+"*"),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte(workloadIfPrefix)})
}

// ifnameVmap dispatches on the interface name through a verdict map.
func (b *ruleBuilder) ifnameVmap(out bool, set string) *ruleBuilder {
	key, word := expr.MetaKeyIIFNAME, "iifname"
	if out {
		key, word = expr.MetaKeyOIFNAME, "oifname"
	}
	b.sets = append(b.sets, set)
	return b.add(fmt.Sprintf("%s vmap @%s", word, set),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: set})
}

// ctState matches when the conntrack state has any of the bits.
func (b *ruleBuilder) ctState(text string, bits uint32) *ruleBuilder {
	return b.add("ct state "+text,
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)})
}

// Conntrack state bits (NF_CT_STATE_*_BIT).
const (
	ctInvalid     = 1
	ctEstablished = 2
	ctRelated     = 4
)

// markSet reports whether bit is set (or clear, when clear is true).
func (b *ruleBuilder) markIs(bit uint32, set bool) *ruleBuilder {
	want, op := bit, "=="
	if !set {
		want, op = 0, "=="
	}
	return b.add(fmt.Sprintf("meta mark & 0x%08x %s 0x%08x", bit, op, want),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bit), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(want)})
}

// markOr sets bits in the mark; markClear clears them.
func (b *ruleBuilder) markOr(bits uint32) *ruleBuilder {
	return b.markWrite(fmt.Sprintf("meta mark set meta mark | 0x%08x", bits), ^bits, bits)
}

func (b *ruleBuilder) markClear(bits uint32) *ruleBuilder {
	return b.markWrite(fmt.Sprintf("meta mark set meta mark & 0x%08x", ^bits), ^bits, 0)
}

func (b *ruleBuilder) markWrite(text string, mask, xor uint32) *ruleBuilder {
	return b.add(text,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(xor)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
}

// family restricts the rule to IPv4 or IPv6 (nfproto).
func (b *ruleBuilder) family(v6 bool) *ruleBuilder {
	p, word := byte(unix.NFPROTO_IPV4), "ipv4"
	if v6 {
		p, word = unix.NFPROTO_IPV6, "ipv6"
	}
	return b.add("meta nfproto "+word,
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}})
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return fmt.Sprint(p)
}

func (b *ruleBuilder) l4proto(p uint8, neg bool) *ruleBuilder {
	return b.add(fmt.Sprintf("meta l4proto %s%s", neqText(neg), protoName(p)),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: cmpOp(neg), Register: reg1, Data: []byte{p}})
}

// addrOffset is the offset of the source or destination address in the
// network header.
func addrOffset(v6, dst bool) (off, n uint32, word string) {
	switch {
	case !v6 && !dst:
		return 12, 4, "ip saddr"
	case !v6 && dst:
		return 16, 4, "ip daddr"
	case v6 && !dst:
		return 8, 16, "ip6 saddr"
	}
	return 24, 16, "ip6 daddr"
}

func (b *ruleBuilder) addrInSet(v6, dst, neg bool, set string) *ruleBuilder {
	off, n, word := addrOffset(v6, dst)
	b.sets = append(b.sets, set)
	return b.add(fmt.Sprintf("%s %s@%s", word, neqText(neg), set),
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: reg1, SetName: set, Invert: neg})
}

// portRange matches the source or destination port (th sport/dport).
func (b *ruleBuilder) portRange(dst, neg bool, min, max uint16) *ruleBuilder {
	off, word := uint32(0), "th sport"
	if dst {
		off, word = 2, "th dport"
	}
	load := &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	if min == max {
		return b.add(fmt.Sprintf("%s %s%d", word, neqText(neg), min), load,
			&expr.Cmp{Op: cmpOp(neg), Register: reg1, Data: binaryutil.BigEndian.PutUint16(min)})
	}
	return b.add(fmt.Sprintf("%s %s%d-%d", word, neqText(neg), min, max), load,
		&expr.Range{Op: cmpOp(neg), Register: reg1, FromData: binaryutil.BigEndian.PutUint16(min), ToData: binaryutil.BigEndian.PutUint16(max)})
}

// addrPortInSet looks (address, l4proto, port) up in a concatenated set.
func (b *ruleBuilder) addrPortInSet(v6, dst, neg bool, set string) {
	off, n, word := addrOffset(v6, dst)
	portOff, portWord := uint32(0), "th sport"
	if dst {
		portOff, portWord = 2, "th dport"
	}
	protoReg := uint32(reg32_0 + n/4)
	b.sets = append(b.sets, set)
	b.add(fmt.Sprintf("%s . meta l4proto . %s %s@%s", word, portWord, neqText(neg), set),
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg32_0, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoReg},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: protoReg + 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Lookup{SourceRegister: reg32_0, SetName: set, Invert: neg})
}

// icmp matches the ICMP (or ICMPv6) type and, when code is set, code; the
// two bytes are adjacent, so type and code are one comparison and its
// negation means "not this type and code".
func (b *ruleBuilder) icmp(v6, neg bool, typ uint8, code *uint8) *ruleBuilder {
	word := "icmp"
	if v6 {
		word = "icmpv6"
	}
	if code == nil {
		return b.add(fmt.Sprintf("%s type %s%d", word, neqText(neg), typ),
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: cmpOp(neg), Register: reg1, Data: []byte{typ}})
	}
	return b.add(fmt.Sprintf("%s type . %s code %s%d . %d", word, word, neqText(neg), typ, *code),
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: cmpOp(neg), Register: reg1, Data: []byte{typ, *code}})
}

// fibDaddrLocal matches packets addressed to one of the host's addresses.
func (b *ruleBuilder) fibDaddrLocal() *ruleBuilder {
	return b.add("fib daddr type local",
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
}

// dnatMap rewrites the destination through a (l4proto . dport) map.
func (b *ruleBuilder) dnatMap(v6 bool, set string) *ruleBuilder {
	fam, word, addrRegs := uint32(unix.NFPROTO_IPV4), "ip", uint32(1)
	if v6 {
		fam, word, addrRegs = unix.NFPROTO_IPV6, "ip6", 4
	}
	b.sets = append(b.sets, set)
	return b.add(fmt.Sprintf("dnat %s to meta l4proto . th dport map @%s", word, set),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_0},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg32_0 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg32_0, DestRegister: reg32_0, IsDestRegSet: true, SetName: set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg32_0, RegProtoMin: reg32_0 + addrRegs, Specified: true})
}

func (b *ruleBuilder) masquerade() *ruleBuilder { return b.add("masquerade", &expr.Masq{}) }

func (b *ruleBuilder) log() *ruleBuilder {
	return b.add(fmt.Sprintf("log prefix %q", LogPrefix),
		&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(LogPrefix)})
}

func (b *ruleBuilder) verdict(kind expr.VerdictKind) *ruleBuilder {
	word := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictReturn: "return"}[kind]
	return b.add(word, &expr.Verdict{Kind: kind})
}

func (b *ruleBuilder) jump(chain string) *ruleBuilder {
	b.jumps = append(b.jumps, chain)
	return b.add("jump "+chain, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
}

// Element encodings.

func ifnameKey(name string) []byte {
	k := make([]byte, unix.IFNAMSIZ)
	copy(k, name)
	return k
}

// intervalElems turns merged, sorted, non-overlapping [start, end) ranges
// into start and end elements; an end past the top of the address space
// has no end element.
func intervalElems(ranges []addrRange) []Elem {
	out := make([]Elem, 0, 2*len(ranges))
	if len(ranges) == 0 {
		return out
	}
	n := ranges[0].start.BitLen() / 8
	buf, off := make([]byte, 2*n*len(ranges)), 0 // one allocation for every key
	key := func(a netip.Addr) []byte {
		k := buf[off : off+n : off+n]
		if n == 4 {
			b := a.As4()
			copy(k, b[:])
		} else {
			b := a.As16()
			copy(k, b[:])
		}
		off += n
		return k
	}
	for _, r := range ranges {
		out = append(out, Elem{Key: key(r.start)})
		if r.end.IsValid() {
			out = append(out, Elem{Key: key(r.end), End: true})
		}
	}
	return out
}

// addrRange is [start, end); an invalid end means the top of the space.
type addrRange struct{ start, end netip.Addr }

// mergePrefixes merges prefixes of one family into sorted,
// non-overlapping, non-adjacent ranges: the kernel refuses overlapping
// intervals.
func mergePrefixes(ps []netip.Prefix) []addrRange {
	return mergeSorted(sortedPrefixes(ps))
}

// mergeSorted is mergePrefixes for prefixes of one family that are
// already masked and sorted by comparePrefixes.
func mergeSorted(ps []netip.Prefix) []addrRange {
	var out []addrRange
	for _, p := range ps {
		start := p.Masked().Addr()
		end := lastAddr(p).Next() // invalid past the top
		if n := len(out); n > 0 {
			last := &out[n-1]
			if !last.end.IsValid() {
				continue // already reaches the top
			}
			if start.Compare(last.end) <= 0 {
				if !end.IsValid() || end.Compare(last.end) > 0 {
					last.end = end
				}
				continue
			}
		}
		out = append(out, addrRange{start, end})
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	a, bits := p.Masked().Addr(), p.Bits()
	if a.Is4() {
		if bits == 32 {
			return a
		}
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:]) | (1<<(32-bits) - 1)
		return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v)))
	}
	b := a.As16()
	for i := range b {
		switch {
		case bits >= 8*(i+1):
		case bits <= 8*i:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - 8*i)
		}
	}
	return netip.AddrFrom16(b)
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	if !slices.IsSortedFunc(out, comparePrefixes) { // calc sorts them
		slices.SortFunc(out, comparePrefixes)
	}
	return out
}

// addrPortKey encodes a triple as the kernel concatenation does: each
// field padded to 4 bytes.
func addrPortKey(a netip.Addr, proto uint8, port uint16) []byte {
	k := append([]byte{}, a.AsSlice()...)
	k = append(k, proto, 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, port)
	return append(k, 0, 0)
}

// dnatKey and dnatVal encode a port mapping's key and value.
func dnatKey(proto uint8, port uint16) []byte {
	k := []byte{proto, 0, 0, 0}
	k = binary.BigEndian.AppendUint16(k, port)
	return append(k, 0, 0)
}

func dnatVal(a netip.Addr, port uint16) []byte {
	v := append([]byte{}, a.AsSlice()...)
	v = binary.BigEndian.AppendUint16(v, port)
	return append(v, 0, 0)
}
