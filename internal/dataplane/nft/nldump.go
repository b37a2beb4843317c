package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The dumps List makes itself, on k.sock: they decode only what a
// Listing holds, where google/nftables decodes every expression of every
// rule and allocates for each attribute of each set element.

// dumpAttempts is how often a dump the kernel marks interrupted (the
// table changed meanwhile) is made before List gives up.
const dumpAttempts = 3

// dumpTable runs a dump of typ (NFT_MSG_GET*) with the given attributes
// and calls fn with each reply's attributes; reset is called before each
// attempt.
func (k *Netlink) dumpTable(typ uint16, attrs []byte, reset func(), fn func(attrs []byte) error) error {
	req := make([]byte, 4, 4+len(attrs))
	req[0] = unix.NFPROTO_INET // nfgenmsg: family, version 0, res_id 0
	req = append(req, attrs...)
	for try := 1; ; try++ {
		reset()
		interrupted := false
		err := k.sock.dump(uint16(unix.NFNL_SUBSYS_NFTABLES<<8)|typ, req, func(flags uint16, data []byte) error {
			interrupted = interrupted || flags&unix.NLM_F_DUMP_INTR != 0
			if len(data) < 4 {
				return fmt.Errorf("reply of %d bytes, shorter than its nfgenmsg header", len(data))
			}
			return fn(data[4:])
		})
		if err != nil || !interrupted {
			return err
		}
		if try == dumpAttempts {
			return fmt.Errorf("the dump was interrupted by changes %d times", dumpAttempts)
		}
	}
}

// ruleComments dumps the rules of table (all its chains in one request)
// and appends each rule's comment to chains[its chain], in order.
func (k *Netlink) ruleComments(table string, chains map[string][]string) error {
	reset := func() {
		for name := range chains {
			chains[name] = chains[name][:0]
		}
	}
	return k.dumpTable(unix.NFT_MSG_GETRULE, appendAttr(nil, unix.NFTA_RULE_TABLE, cstring(table)), reset, func(attrs []byte) error {
		var tbl, chain, ud []byte
		err := nlAttrs(attrs, func(typ uint16, data []byte) error {
			switch typ {
			case unix.NFTA_RULE_TABLE:
				tbl = trimNUL(data)
			case unix.NFTA_RULE_CHAIN:
				chain = trimNUL(data)
			case unix.NFTA_RULE_USERDATA:
				ud = data
			}
			return nil
		})
		if err != nil {
			return err
		}
		if chain == nil {
			return errors.New("rule message without a chain name")
		}
		if string(tbl) != table {
			return nil // the kernel filters by table; this makes sure
		}
		comments, ok := chains[string(chain)]
		if !ok {
			return nil // a chain created after the chain listing
		}
		comment, _ := userdata.GetString(ud, userdata.TypeComment)
		chains[string(chain)] = append(comments, comment)
		return nil
	})
}

// setElems dumps the elements of set in table.
func (k *Netlink) setElems(table, set string) ([]Elem, error) {
	attrs := appendAttr(nil, unix.NFTA_SET_ELEM_LIST_TABLE, cstring(table))
	attrs = appendAttr(attrs, unix.NFTA_SET_ELEM_LIST_SET, cstring(set))
	var (
		out   []Elem
		arena []byte // the elements' bytes, copied out of the reused read buffer
	)
	keep := func(b []byte) []byte {
		arena = append(arena, b...)
		return arena[len(arena)-len(b) : len(arena) : len(arena)]
	}
	reset := func() { out, arena = make([]Elem, 0), nil }
	err := k.dumpTable(unix.NFT_MSG_GETSETELEM, attrs, reset, func(attrs []byte) error {
		return nlAttrs(attrs, func(typ uint16, list []byte) error {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return nil
			}
			return nlAttrs(list, func(typ uint16, elem []byte) error {
				if typ != unix.NFTA_LIST_ELEM {
					return nil
				}
				e, err := decodeElem(elem, keep)
				if err != nil {
					return err
				}
				out = append(out, e)
				return nil
			})
		})
	})
	return out, err
}

// decodeElem decodes one NFTA_LIST_ELEM's attributes, keeping bytes
// with keep.
func decodeElem(b []byte, keep func([]byte) []byte) (Elem, error) {
	var e Elem
	err := nlAttrs(b, func(typ uint16, data []byte) error {
		switch typ {
		case unix.NFTA_SET_ELEM_KEY:
			return nlAttrs(data, func(typ uint16, v []byte) error {
				if typ == unix.NFTA_DATA_VALUE {
					e.Key = keep(v)
				}
				return nil
			})
		case unix.NFTA_SET_ELEM_FLAGS:
			if len(data) < 4 {
				return fmt.Errorf("element flags of %d bytes, want 4", len(data))
			}
			e.End = binary.BigEndian.Uint32(data)&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_DATA:
			return nlAttrs(data, func(typ uint16, v []byte) error {
				switch typ {
				case unix.NFTA_DATA_VALUE:
					e.Val = keep(v)
				case unix.NFTA_DATA_VERDICT:
					vd, err := decodeVerdict(v)
					if err != nil {
						return fmt.Errorf("decoding a verdict: %w", err)
					}
					e.Verdict, e.Chain = verdictName(vd.Kind), vd.Chain
				}
				return nil
			})
		}
		return nil
	})
	if err == nil && e.Key == nil {
		err = errors.New("set element without a key")
	}
	return e, err
}

// nlAttrs calls fn with each netlink attribute in b: its type, without
// the nested and byte-order flags, and its payload.
func nlAttrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return fmt.Errorf("malformed netlink attribute: length %d with %d bytes left", l, len(b))
		}
		if err := fn(typ, b[4:l]); err != nil {
			return err
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return nil
}

// appendAttr appends a netlink attribute to b.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for range nlAlign(l) - l {
		b = append(b, 0)
	}
	return b
}

func cstring(s string) []byte { return append([]byte(s), 0) }

func trimNUL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == 0 {
		return b[:n-1]
	}
	return b
}
