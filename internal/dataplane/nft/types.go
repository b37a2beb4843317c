package nft

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
)

// Mark bits. Calyx takes two bits of the packet mark inside 0xff000000,
// the range Calico reserves for itself (IptablesMarkMask), allocated from
// the low end as Felix does: a policy or profile chain that allows a packet
// sets MarkAccept and returns; one that passes it to the profiles sets
// MarkPass and returns. Both are cleared at the top of every endpoint
// chain, so the egress verdict of the source never leaks into the ingress
// check of the destination.
const (
	DefaultMarkAccept uint32 = 0x01000000
	DefaultMarkPass   uint32 = 0x02000000
)

// DefaultTable is the name of Calyx's table (family inet).
const DefaultTable = "calyx"

// LogPrefix is the prefix of the kernel log lines a Log rule writes.
const LogPrefix = "calyx-packet"

// maxElemsPerOp bounds the elements one netlink message carries: a message
// of 10,000 interval elements is refused ("message too long"), 1,000 load
// quickly (reference/performance.md B3).
const maxElemsPerOp = 1000

// maxElemBytesPerOp bounds the encoded elements of one message: they are
// one netlink attribute, whose length is 16 bits. A longer list wraps the
// length and the kernel misreads the message (a verdict map's thousand
// elements, with their chain names, fail with "no such file or
// directory").
const maxElemBytesPerOp = 60000

// SetType is the key (and, for maps, value) type of a named set.
type SetType int

// Set types.
const (
	// SetAddr4 and SetAddr6 hold address intervals (type ipv4_addr or
	// ipv6_addr, flags interval): the members of an address set, merged.
	SetAddr4 SetType = iota
	SetAddr6
	// SetAddrPort4 and SetAddrPort6 hold (address, protocol, port) triples
	// (ipv4_addr . inet_proto . inet_service): named ports.
	SetAddrPort4
	SetAddrPort6
	// MapIfname maps an interface name to a verdict (jump or goto a chain).
	MapIfname
	// MapDNAT4 and MapDNAT6 map (protocol, port) to (address, port): port
	// mappings.
	MapDNAT4
	MapDNAT6
)

func (t SetType) String() string {
	switch t {
	case SetAddr4:
		return "type ipv4_addr; flags interval"
	case SetAddr6:
		return "type ipv6_addr; flags interval"
	case SetAddrPort4:
		return "type ipv4_addr . inet_proto . inet_service"
	case SetAddrPort6:
		return "type ipv6_addr . inet_proto . inet_service"
	case MapIfname:
		return "type ifname : verdict"
	case MapDNAT4:
		return "type inet_proto . inet_service : ipv4_addr . inet_service"
	case MapDNAT6:
		return "type inet_proto . inet_service : ipv6_addr . inet_service"
	}
	return fmt.Sprintf("settype(%d)", int(t))
}

// SetSpec declares a named set or map.
type SetSpec struct {
	Name    string
	Type    SetType
	Comment string
}

// Elem is one element of a set or map, as the kernel stores it: an
// interval set holds a start element and an End element per range.
type Elem struct {
	Key []byte
	End bool // interval end
	// Verdict ("jump" or "goto") and Chain are a MapIfname element's
	// value.
	Verdict, Chain string
	// Val is the value of a MapDNAT element.
	Val []byte
}

// id identifies the element within its set; two elements with the same id
// and different values conflict.
func (e Elem) id() string {
	if e.End {
		return string(e.Key) + "\x00end"
	}
	return string(e.Key)
}

// value is what the element maps to, for comparisons.
func (e Elem) value() string { return e.Verdict + " " + e.Chain + "/" + string(e.Val) }

// BaseChain makes a chain a base chain: attached to a hook.
type BaseChain struct {
	Type     string // "filter" or "nat"
	Hook     string // "prerouting", "input", "forward", "output", "postrouting"
	Priority int32
}

// ChainSpec declares a chain.
type ChainSpec struct {
	Name string
	Base *BaseChain // nil for a regular chain
}

// Rule is one rule: its nft-syntax text (for the Fake and for humans),
// its expressions (for the kernel) and its comment, which identifies it:
// a readable label and a hash of the chain name and text, so Resync can
// compare kernel rules with desired ones by comment alone.
type Rule struct {
	Chain   string
	Comment string
	Text    string
	Exprs   []expr.Any
	// Jumps and Sets are the chains and sets the rule refers to.
	Jumps, Sets []string
}

// OpKind is what an Op does.
type OpKind int

// Operations, in the order a transaction issues them.
const (
	OpAddTable OpKind = iota
	OpAddSet
	OpDelElems
	OpAddElems
	OpAddChain
	OpFlushChain
	OpAddRule
	OpDelChain
	OpDelSet
)

func (k OpKind) String() string {
	return [...]string{"add table", "add set", "delete elements", "add elements", "add chain", "flush chain", "add rule", "delete chain", "delete set"}[k]
}

// Op is one change within a transaction.
type Op struct {
	Kind  OpKind
	Set   *SetSpec   // OpAddSet, OpDelSet, OpAddElems, OpDelElems
	Elems []Elem     // OpAddElems, OpDelElems (at most maxElemsPerOp)
	Chain *ChainSpec // OpAddChain, OpFlushChain, OpDelChain
	Rule  *Rule      // OpAddRule
}

func (o Op) String() string {
	switch o.Kind {
	case OpAddSet, OpDelSet:
		return o.Kind.String() + " " + o.Set.Name
	case OpAddElems, OpDelElems:
		return fmt.Sprintf("%s %s (%d)", o.Kind, o.Set.Name, len(o.Elems))
	case OpAddChain, OpFlushChain, OpDelChain:
		return o.Kind.String() + " " + o.Chain.Name
	case OpAddRule:
		return o.Kind.String() + " " + o.Rule.Chain + " " + o.Rule.Text
	}
	return o.Kind.String()
}

// describeOps summarises a transaction for error messages.
func describeOps(ops []Op) string {
	count := map[OpKind]int{}
	for _, o := range ops {
		count[o.Kind]++
	}
	var parts []string
	for k := OpAddTable; k <= OpDelSet; k++ {
		if count[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// Listing is what the kernel holds in Calyx's table: each chain's rule
// comments in order and each set's elements.
type Listing struct {
	Chains map[string][]string
	Sets   map[string][]Elem
}

// Kernel is what the reconciler needs from nftables. Implementations:
// Netlink and Fake.
type Kernel interface {
	// Run applies ops to the table as one transaction: all or nothing.
	Run(ctx context.Context, table string, ops []Op) error
	// List reads the table; nil (and no error) when it does not exist.
	List(ctx context.Context, table string) (*Listing, error)
	// Generation returns the ruleset's generation ID, which the kernel
	// increments by one on every transaction committed in the network
	// namespace, by anyone (the `nft` command's included): while it
	// stays put, no table changed.
	Generation(ctx context.Context) (uint32, error)
}
