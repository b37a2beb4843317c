package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink encodes the ops a transaction is made of (tables, chains,
// rules, set elements) itself, into one growing buffer, and leaves the
// creation and deletion of sets to google/nftables. The messages are
// those google/nftables would build (TestEncodeMatchesGoogle), without
// its allocations per message and per element; the expressions are
// still marshalled by google/nftables' expr package.

const nftMsgBase = unix.NFNL_SUBSYS_NFTABLES << 8

// arenaChunk is the least a new arena chunk holds.
const arenaChunk = 256 << 10

// ownEncoded says whether Netlink encodes op itself.
func ownEncoded(op Op) bool {
	switch op.Kind {
	case OpAddTable, OpAddChain, OpFlushChain, OpDelChain, OpAddElems, OpDelElems:
		return true
	case OpAddRule:
		for _, e := range op.Rule.Exprs {
			switch e.(type) {
			case *expr.Match, *expr.Target:
				return false // xtables compat: google/nftables adds NFTA_RULE_COMPAT
			}
		}
		return true
	}
	return false
}

// encodeOwn appends op's message to k.msgs, its payload in k.arena.
func (k *Netlink) encodeOwn(table string, op Op) error {
	start := len(k.arena)
	if cap(k.arena)-start < 4<<10 {
		// A new chunk; messages already encoded keep the old one.
		k.arena, start = make([]byte, 0, arenaChunk), 0
	}
	b := k.arena
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0) // nfgenmsg
	var typ uint16
	flags := netlink.Request
	switch op.Kind {
	case OpAddTable:
		typ, flags = unix.NFT_MSG_NEWTABLE, flags|netlink.Create
		b = appendAttrString(b, unix.NFTA_TABLE_NAME, table)
		b = appendAttr(b, unix.NFTA_TABLE_FLAGS, []byte{0, 0, 0, 0})
	case OpAddChain:
		typ, flags = unix.NFT_MSG_NEWCHAIN, flags|netlink.Create
		b = appendAttrString(b, unix.NFTA_CHAIN_TABLE, table)
		b = appendAttrString(b, unix.NFTA_CHAIN_NAME, op.Chain.Name)
		if base := op.Chain.Base; base != nil {
			hook, ok := hooks[base.Hook]
			if !ok {
				return fmt.Errorf("chain %s: unknown hook %q", op.Chain.Name, base.Hook)
			}
			nest := len(b)
			b = append(b, 0, 0, 0, 0)
			b = appendAttrU32(b, unix.NFTA_HOOK_HOOKNUM, uint32(*hook))
			b = appendAttrU32(b, unix.NFTA_HOOK_PRIORITY, uint32(base.Priority))
			endNest(b, nest, unix.NFTA_CHAIN_HOOK)
			b = appendAttrU32(b, unix.NFTA_CHAIN_POLICY, uint32(nftables.ChainPolicyAccept))
			if base.Type != "" {
				b = appendAttrString(b, unix.NFTA_CHAIN_TYPE, base.Type)
			}
		}
	case OpFlushChain:
		typ = unix.NFT_MSG_DELRULE
		b = appendAttrString(b, unix.NFTA_RULE_TABLE, table)
		b = appendAttrString(b, unix.NFTA_RULE_CHAIN, op.Chain.Name)
	case OpDelChain:
		typ = unix.NFT_MSG_DELCHAIN
		b = appendAttrString(b, unix.NFTA_CHAIN_TABLE, table)
		b = appendAttrString(b, unix.NFTA_CHAIN_NAME, op.Chain.Name)
	case OpAddRule:
		typ, flags = unix.NFT_MSG_NEWRULE, flags|netlink.Create|unix.NLM_F_APPEND
		b = appendAttrString(b, unix.NFTA_RULE_TABLE, table)
		b = appendAttrString(b, unix.NFTA_RULE_CHAIN, op.Rule.Chain)
		list := len(b)
		b = append(b, 0, 0, 0, 0)
		for i, e := range op.Rule.Exprs {
			data, err := expr.Marshal(unix.NFPROTO_INET, e)
			if err != nil {
				return fmt.Errorf("marshalling expression %d (%T): %w", i, e, err)
			}
			elem := len(b)
			b = append(b, 0, 0, 0, 0)
			b = appendPadded(b, data)
			endNest(b, elem, unix.NFTA_LIST_ELEM)
		}
		if len(b)-list > 0xffff {
			return fmt.Errorf("rule in chain %s: expressions of %d bytes exceed a netlink attribute's 65,535", op.Rule.Chain, len(b)-list)
		}
		endNest(b, list, unix.NFTA_RULE_EXPRESSIONS)
		ud := len(b)
		b = append(b, 0, 0, 0, 0)
		b = userdata.AppendString(b, userdata.TypeComment, op.Rule.Comment)
		binary.NativeEndian.PutUint16(b[ud:], uint16(len(b)-ud))
		binary.NativeEndian.PutUint16(b[ud+2:], unix.NFTA_RULE_USERDATA)
		b = pad(b, len(b)-ud)
	case OpAddElems, OpDelElems:
		typ, flags = unix.NFT_MSG_NEWSETELEM, flags|netlink.Create
		if op.Kind == OpDelElems {
			typ = unix.NFT_MSG_DELSETELEM
		}
		var err error
		if b, err = appendElems(b, table, op.Set.Name, op.Elems); err != nil {
			return fmt.Errorf("elements of set %s: %w", op.Set.Name, err)
		}
	default:
		return fmt.Errorf("op kind %s is not encoded here", op.Kind)
	}
	k.arena = b
	k.msgs = append(k.msgs, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nftMsgBase | typ), Flags: flags},
		Data:   b[start:len(b):len(b)],
	})
	return nil
}

// appendElems appends the attributes of a NEWSETELEM or DELSETELEM
// message for elems of set, laid out as google/nftables lays them out
// (an element's flags marked nested, the verdict of a map element as
// NFTA_SET_ELEM_DATA in NFTA_SET_ELEM_DATA, which the kernel reads as
// NFTA_DATA_VERDICT, the values being equal).
func appendElems(b []byte, table, set string, elems []Elem) ([]byte, error) {
	b = appendAttrString(b, unix.NFTA_SET_ELEM_LIST_SET, set)
	b = appendAttrU32(b, unix.NFTA_SET_ELEM_LIST_SET_ID, 0)
	b = appendAttrString(b, unix.NFTA_SET_ELEM_LIST_TABLE, table)
	list := len(b)
	b = append(b, 0, 0, 0, 0)
	for i, e := range elems {
		item := len(b)
		b = append(b, 0, 0, 0, 0)
		if e.End {
			b = appendAttrU32(b, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED, unix.NFT_SET_ELEM_INTERVAL_END)
		}
		key := len(b)
		b = append(b, 0, 0, 0, 0)
		b = appendAttrBytes(b, unix.NFTA_DATA_VALUE, e.Key)
		endNest(b, key, unix.NFTA_SET_ELEM_KEY)
		var kind expr.VerdictKind
		switch e.Verdict {
		case "jump":
			kind = expr.VerdictJump
		case "goto":
			kind = expr.VerdictGoto
		}
		code := uint32(kind)
		switch {
		case code != 0:
			data := len(b)
			b = append(b, 0, 0, 0, 0)
			verdict := len(b)
			b = append(b, 0, 0, 0, 0)
			b = appendAttrU32(b, unix.NFTA_VERDICT_CODE, code)
			if e.Chain != "" {
				b = appendAttrString(b, unix.NFTA_VERDICT_CHAIN, e.Chain)
			}
			endNest(b, verdict, unix.NFTA_DATA_VERDICT)
			endNest(b, data, unix.NFTA_SET_ELEM_DATA)
		case len(e.Val) > 0:
			data := len(b)
			b = append(b, 0, 0, 0, 0)
			b = appendAttrBytes(b, unix.NFTA_DATA_VALUE, e.Val)
			endNest(b, data, unix.NFTA_SET_ELEM_DATA)
		}
		endNest(b, item, uint16(i+1))
	}
	if len(b)-list > 0xffff {
		return nil, fmt.Errorf("%d elements take %d bytes, more than a netlink attribute's 65,535", len(elems), len(b)-list)
	}
	endNest(b, list, unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	return b, nil
}

func appendAttrBytes(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	return appendPadded(b, data)
}

// endNest fills in the header of the nested attribute typ that starts at
// b[at:] and ends at the end of b.
func endNest(b []byte, at int, typ uint16) {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
	binary.NativeEndian.PutUint16(b[at+2:], typ|unix.NLA_F_NESTED)
}

func appendAttrString(b []byte, typ uint16, s string) []byte {
	l := 4 + len(s) + 1
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	return pad(b, l)
}

func appendAttrU32(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, 8)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint32(b, v)
}

// appendPadded appends data and pads it to 4 bytes.
func appendPadded(b, data []byte) []byte {
	return pad(append(b, data...), len(data))
}

// pad appends the zeros that align an item of length l ending b.
func pad(b []byte, l int) []byte {
	for range nlAlign(l) - l {
		b = append(b, 0)
	}
	return b
}
