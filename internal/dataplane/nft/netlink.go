package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/calyx-net/calyx/internal/netns"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer is the netlink socket's send and receive buffer. A
// transaction is one sendmsg, which the kernel refuses when it exceeds the
// send buffer ("message too long"), and the kernel acknowledges each of
// its messages into the receive buffer, which must hold them all: a full
// programming of 1,000 endpoints is tens of thousands of messages. The
// kernel charges only what a message uses, so a large ceiling is cheap.
const socketBuffer = 64 << 20

// Netlink is the Kernel of one network namespace. It encodes most
// messages itself (nlenc.go); google/nftables encodes the creation and
// deletion of sets (into memory, through a test dial that captures them)
// and lists tables, chains and sets. Netlink's own socket (nlSocket)
// sends the batches and dumps rules and set elements. Both sockets are
// created in the namespace and stay bound to it, so they serve any
// goroutine. ctx is checked before each request.
type Netlink struct {
	mu      sync.Mutex // guards following fields
	conn    *nftables.Conn
	enc     *nftables.Conn // encodes; its Flush hands the batch to capture
	sock    *nlSocket
	batch   []netlink.Message // what enc's last Flush produced
	pending bool              // enc holds queued ops
	msgs    []netlink.Message // the batch being built, without BATCH_BEGIN and _END
	arena   []byte            // the payloads of the messages Netlink encodes itself
	lastLen int               // messages in the last batch flushed
	nextID  uint32            // set IDs within a transaction
}

var _ Kernel = (*Netlink)(nil)

// NewNetlink returns the Kernel of n. Close it when done.
func NewNetlink(n *netns.NS) (*Netlink, error) {
	k := &Netlink{}
	err := n.Do(func() error {
		var err error
		if k.conn, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(forceBuffers)); err != nil {
			return err
		}
		if k.sock, err = dialSocket(); err != nil {
			_ = k.conn.CloseLasting()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink in %s: %w", n.Path(), err)
	}
	if k.enc, err = newEncoder(k); err != nil {
		_ = k.Close()
		return nil, fmt.Errorf("creating the nftables encoder: %w", err)
	}
	return k, nil
}

// newEncoder returns the nftables.Conn that encodes k's batches: its
// Flush hands them to k.capture instead of a socket.
func newEncoder(k *Netlink) (*nftables.Conn, error) {
	return nftables.New(nftables.WithTestDial(k.capture))
}

// capture is enc's netlink peer: it keeps the batch Flush sends, and
// answers Flush's first read for acknowledgements with errCaptured.
func (k *Netlink) capture(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return nil, errCaptured{}
	}
	k.batch = req
	return nil, nil
}

// errCaptured ends enc's Flush once capture holds the batch. Flush reads
// an acknowledgement for every message, two reads each (thousands of
// calls and allocations for a full programming), but stops at the first
// error that is ENOBUFS, the kernel's "only error you will get": so
// errCaptured says it is one. Were Flush to read on regardless, each read
// would get errCaptured again, and flush would still recognise it.
type errCaptured struct{}

func (errCaptured) Error() string { return "batch captured for sending" }

func (errCaptured) Is(target error) bool { return target == syscall.ENOBUFS }

// forceBuffers sets the socket's buffers past net.core.{w,r}mem_max
// (CAP_NET_ADMIN, which programming nftables needs anyway).
func forceBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reaching the netlink socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, socketBuffer); serr != nil {
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, socketBuffer)
	}); err != nil {
		return fmt.Errorf("reaching the netlink socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("setting the netlink socket's buffers to %d bytes: %w", socketBuffer, serr)
	}
	return nil
}

// Close closes the netlink sockets.
func (k *Netlink) Close() error {
	return errors.Join(k.conn.CloseLasting(), k.sock.close())
}

func nftTable(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

var (
	typeAddrPort4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typeAddrPort6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	typeProtoPort = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeAddrSvc4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	typeAddrSvc6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
)

func nftSet(t *nftables.Table, s *SetSpec) *nftables.Set {
	ns := &nftables.Set{Table: t, Name: s.Name, Comment: s.Comment}
	switch s.Type {
	case SetAddr4:
		ns.KeyType, ns.Interval = nftables.TypeIPAddr, true
	case SetAddr6:
		ns.KeyType, ns.Interval = nftables.TypeIP6Addr, true
	case SetAddrPort4:
		ns.KeyType = typeAddrPort4
	case SetAddrPort6:
		ns.KeyType = typeAddrPort6
	case MapIfname:
		// Interface names are strings, in host byte order: without saying
		// so nft lists every key as "".
		ns.KeyType, ns.IsMap, ns.DataType = nftables.TypeIFName, true, nftables.TypeVerdict
		ns.KeyByteOrder = binaryutil.NativeEndian
	case MapDNAT4:
		ns.KeyType, ns.IsMap, ns.DataType = typeProtoPort, true, typeAddrSvc4
	case MapDNAT6:
		ns.KeyType, ns.IsMap, ns.DataType = typeProtoPort, true, typeAddrSvc6
	}
	return ns
}

func nftElems(elems []Elem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.End, Val: e.Val}
		switch e.Verdict {
		case "jump":
			out[i].VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}
		case "goto":
			out[i].VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Chain}
		}
	}
	return out
}

var hooks = map[string]*nftables.ChainHook{
	"prerouting":  nftables.ChainHookPrerouting,
	"input":       nftables.ChainHookInput,
	"forward":     nftables.ChainHookForward,
	"output":      nftables.ChainHookOutput,
	"postrouting": nftables.ChainHookPostrouting,
}

// Run implements Kernel: the ops become one netlink batch, which the
// kernel applies as one transaction.
func (k *Netlink) Run(ctx context.Context, table string, ops []Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	t := nftTable(table)
	for i, op := range ops {
		if err := k.queue(t, op); err != nil {
			k.reset()
			return fmt.Errorf("encoding op %d (%s): %w", i, op, err)
		}
	}
	err := k.flush()
	var refused *nlMsgError
	// Each op is one message, between BATCH_BEGIN and BATCH_END.
	if errors.As(err, &refused) && refused.index >= 1 && refused.index <= len(ops) && k.lastLen == len(ops)+2 {
		op := ops[refused.index-1]
		return fmt.Errorf("running a transaction of %d ops: op %d (%s) refused: %w", len(ops), refused.index-1, op, refused.errno)
	}
	if err != nil {
		return fmt.Errorf("running a transaction of %d ops: %w", len(ops), err)
	}
	return nil
}

// encode has enc encode the queued batch into k.batch.
func (k *Netlink) encode() error {
	k.batch = nil
	if err := k.enc.Flush(); err != nil && !(k.batch != nil && errors.As(err, new(errCaptured))) {
		return fmt.Errorf("encoding: %w", err)
	}
	return nil
}

// reset drops what was queued and never sent.
func (k *Netlink) reset() {
	if k.pending {
		_ = k.encode()
	}
	clear(k.msgs) // let the payloads go
	k.pending, k.batch, k.msgs, k.arena = false, nil, k.msgs[:0], nil
	if cap(k.msgs) > keptMsgs {
		k.msgs = nil
	}
}

// keptMsgs is the most messages whose slice reset keeps for the next
// batch: a full programming's is not worth keeping.
const keptMsgs = 4096

// movePending appends what enc holds to k.msgs, keeping the ops' order.
func (k *Netlink) movePending() error {
	if !k.pending {
		return nil
	}
	k.pending = false
	if err := k.encode(); err != nil {
		return err
	}
	if n := len(k.batch); n >= 2 {
		k.msgs = append(k.msgs, k.batch[1:n-1]...) // without BATCH_BEGIN and _END
	}
	k.batch = nil
	return nil
}

// batchMsg is a BATCH_BEGIN or _END message of the nftables subsystem.
func batchMsg(typ uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}, // res_id big-endian
	}
}

// frame returns the queued messages framed as one batch.
func (k *Netlink) frame() ([]netlink.Message, error) {
	if err := k.movePending(); err != nil {
		return nil, err
	}
	if len(k.msgs) == 0 {
		return nil, nil
	}
	batch := make([]netlink.Message, 0, len(k.msgs)+2)
	batch = append(batch, batchMsg(unix.NFNL_MSG_BATCH_BEGIN))
	batch = append(batch, k.msgs...)
	return append(batch, batchMsg(unix.NFNL_MSG_BATCH_END)), nil
}

// flush sends the queued messages as one batch on k.sock.
func (k *Netlink) flush() error {
	defer k.reset()
	batch, err := k.frame()
	if err != nil || batch == nil {
		return err
	}
	k.lastLen = len(batch)
	return k.sock.transact(batch)
}

// queue adds op to the pending batch: Netlink encodes most ops itself,
// google/nftables the rest (ownEncoded). It only encodes; flush sends.
func (k *Netlink) queue(t *nftables.Table, op Op) error {
	if !ownEncoded(op) {
		k.pending = true
		return k.queueGoogle(t, op)
	}
	if err := k.movePending(); err != nil {
		return err
	}
	return k.encodeOwn(t.Name, op)
}

// queueGoogle has enc encode op (any kind).
func (k *Netlink) queueGoogle(t *nftables.Table, op Op) error {
	switch op.Kind {
	case OpAddTable:
		k.enc.AddTable(t)
	case OpAddSet:
		s := nftSet(t, op.Set)
		k.nextID++
		s.ID = k.nextID
		return k.enc.AddSet(s, nil)
	case OpAddElems:
		return k.enc.SetAddElements(nftSet(t, op.Set), nftElems(op.Elems))
	case OpDelElems:
		return k.enc.SetDeleteElements(nftSet(t, op.Set), nftElems(op.Elems))
	case OpDelSet:
		k.enc.DelSet(nftSet(t, op.Set))
	case OpAddChain:
		c := &nftables.Chain{Table: t, Name: op.Chain.Name}
		if b := op.Chain.Base; b != nil {
			hook, ok := hooks[b.Hook]
			if !ok {
				return fmt.Errorf("chain %s: unknown hook %q", op.Chain.Name, b.Hook)
			}
			prio := nftables.ChainPriority(b.Priority)
			accept := nftables.ChainPolicyAccept
			c.Hooknum, c.Priority, c.Type, c.Policy = hook, &prio, nftables.ChainType(b.Type), &accept
		}
		k.enc.AddChain(c)
	case OpFlushChain:
		k.enc.FlushChain(&nftables.Chain{Table: t, Name: op.Chain.Name})
	case OpDelChain:
		k.enc.DelChain(&nftables.Chain{Table: t, Name: op.Chain.Name})
	case OpAddRule:
		k.enc.AddRule(&nftables.Rule{
			Table:    t,
			Chain:    &nftables.Chain{Table: t, Name: op.Rule.Chain},
			Exprs:    op.Rule.Exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, op.Rule.Comment),
		})
	default:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	}
	return nil
}

// List implements Kernel.
func (k *Netlink) List(ctx context.Context, table string) (*Listing, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	tables, err := k.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("listing inet tables: %w", err)
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == table
	}
	if !found {
		return nil, nil
	}
	t := nftTable(table)
	l := &Listing{Chains: map[string][]string{}, Sets: map[string][]Elem{}}
	chains, err := k.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name == table {
			l.Chains[c.Name] = []string{}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := k.ruleComments(table, l.Chains); err != nil {
		return nil, fmt.Errorf("listing the rules of table inet %s: %w", table, err)
	}
	sets, err := k.conn.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range sets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		elems, err := k.setElems(table, s.Name)
		if err != nil {
			return nil, fmt.Errorf("listing the elements of set %s: %w", s.Name, err)
		}
		l.Sets[s.Name] = elems
	}
	return l, nil
}

// Generation implements Kernel (NFT_MSG_GETGEN).
func (k *Netlink) Generation(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var gen uint32
	found := false
	req := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0} // nfgenmsg
	err := k.sock.get(uint16(unix.NFNL_SUBSYS_NFTABLES<<8)|unix.NFT_MSG_GETGEN, req, func(_ uint16, data []byte) error {
		if len(data) < 4 {
			return fmt.Errorf("reply of %d bytes, shorter than its nfgenmsg header", len(data))
		}
		return nlAttrs(data[4:], func(typ uint16, v []byte) error {
			if typ == unix.NFTA_GEN_ID && len(v) == 4 {
				gen, found = binary.BigEndian.Uint32(v), true
			}
			return nil
		})
	})
	if err == nil && !found {
		err = errors.New("no generation ID in the reply")
	}
	if err != nil {
		return 0, fmt.Errorf("reading the nftables generation: %w", err)
	}
	return gen, nil
}

// deleteTable removes the table and everything in it (benchmarks start
// from an empty table; the reconciler itself never deletes its table).
func (k *Netlink) deleteTable(table string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.enc.DelTable(nftTable(table))
	k.pending = true
	if err := k.flush(); err != nil {
		return fmt.Errorf("deleting table inet %s: %w", table, err)
	}
	return nil
}

// verdictName is how Elem names a map element's verdict.
func verdictName(kind expr.VerdictKind) string {
	switch kind {
	case expr.VerdictJump:
		return "jump"
	case expr.VerdictGoto:
		return "goto"
	}
	return fmt.Sprintf("verdict(%d)", kind)
}

// decodeVerdict decodes the nested NFTA_VERDICT_* attributes of a verdict.
func decodeVerdict(b []byte) (*expr.Verdict, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	return v, ad.Err()
}
