package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlSocket is Netlink's own NETLINK_NETFILTER socket, which sends its
// batches and makes its dumps, reading the kernel's replies into one
// reused buffer.
//
// Why not google/nftables' Flush: it sets NLM_F_ACK on every message of a
// batch and then receives each acknowledgement with a peek, a read and a
// fresh buffer, which is most of a large transaction's cost. The kernel
// reports every refused message whether or not it asked for an
// acknowledgement, and delivers those reports, then the acknowledgements
// asked for, in batch order once it has committed or aborted the whole
// batch (nfnetlink_rcv_batch). So a batch needs only one acknowledgement,
// on its last message: once it arrives every error has arrived before it.
// A failure of the batch as a whole (the commit, or no memory for the
// error list) is reported against the batch's first message, BATCH_BEGIN,
// which also ends the wait. The kernel runs a batch within the sendmsg
// that carries it, so all replies are queued when sendmsg returns; after
// the verdict the socket is drained without waiting, leaving nothing for
// the next request.
type nlSocket struct {
	conn *netlink.Conn
	raw  syscall.RawConn
	seq  uint32
	out  []byte // send buffer, reused
	in   []byte // receive buffer, reused
}

// recvBuffer is the size of a read: more than any datagram the kernel
// sends here (a dump's datagrams are at most 32 kB on current kernels,
// and errors carry only the refused message's header, NETLINK_CAP_ACK).
// A longer one would arrive truncated and fail to parse, never pass.
const recvBuffer = 256 << 10

// keptSendBuffer is the largest send buffer kept for the next batch: one
// endpoint's or policy's change is a few kB, and a larger batch (a first
// programming, a policy that many endpoints use) costs far more to encode
// than its buffer's allocation; kept, it would stay for the agent's life.
const keptSendBuffer = 64 << 10

// dialSocket opens a NETLINK_NETFILTER socket in the caller's network
// namespace.
func dialSocket() (*nlSocket, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	s, err := newSocket(c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return s, nil
}

func newSocket(c *netlink.Conn) (*nlSocket, error) {
	if err := forceBuffers(c); err != nil {
		return nil, err
	}
	// Errors need not echo the refused message: the sequence number
	// names it.
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return nil, fmt.Errorf("setting NETLINK_CAP_ACK: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("reaching the netlink socket: %w", err)
	}
	return &nlSocket{conn: c, raw: raw, in: make([]byte, recvBuffer)}, nil
}

func (s *nlSocket) close() error { return s.conn.Close() }

// nlMsgError is a message the kernel refused: index is its position in
// what was sent (0 is BATCH_BEGIN, which stands for the whole batch).
type nlMsgError struct {
	index int
	errno syscall.Errno
}

func (e *nlMsgError) Error() string { return e.errno.Error() }
func (e *nlMsgError) Unwrap() error { return e.errno }

const nlmsgHdrLen = 16

func nlAlign(n int) int { return (n + 3) &^ 3 }

// encode frames msgs into s.out with consecutive sequence numbers from
// s.seq+1, asking for an acknowledgement only where ack(i) says so, and
// returns the first sequence number. It clears NLM_F_ECHO, which
// google/nftables sets on every new rule (to learn its handle): Calyx
// never uses the echo, and asking for it makes the kernel encode every
// new rule back to the socket at commit.
func (s *nlSocket) encode(msgs []netlink.Message, ack func(i int) bool) uint32 {
	size := 0
	for _, m := range msgs {
		size += nlAlign(nlmsgHdrLen + len(m.Data))
	}
	if cap(s.out) < size {
		s.out = make([]byte, size)
	}
	b := s.out[:size]
	first := s.seq + 1
	off := 0
	for i, m := range msgs {
		l := nlmsgHdrLen + len(m.Data)
		flags := m.Header.Flags &^ (netlink.Acknowledge | unix.NLM_F_ECHO)
		if ack(i) {
			flags |= netlink.Acknowledge
		}
		s.seq++
		binary.NativeEndian.PutUint32(b[off:], uint32(l))
		binary.NativeEndian.PutUint16(b[off+4:], uint16(m.Header.Type))
		binary.NativeEndian.PutUint16(b[off+6:], uint16(flags))
		binary.NativeEndian.PutUint32(b[off+8:], s.seq)
		binary.NativeEndian.PutUint32(b[off+12:], 0)
		copy(b[off+nlmsgHdrLen:], m.Data)
		end := off + nlAlign(l)
		clear(b[off+l : end])
		off = end
	}
	s.out = b
	return first
}

func (s *nlSocket) send() error {
	var serr error
	err := s.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), s.out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sending %d bytes: %w", len(s.out), err)
	}
	return nil
}

// recv reads one datagram into s.in; with wait false it returns 0 when
// nothing is queued.
func (s *nlSocket) recv(wait bool) (int, error) {
	var (
		n    int
		rerr error
	)
	flags := 0
	if !wait {
		flags = unix.MSG_DONTWAIT
	}
	err := s.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), s.in, flags)
		return !wait || rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if !wait && errors.Is(err, unix.EAGAIN) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("receiving from netlink: %w", err)
	}
	return n, nil
}

// drain discards whatever is queued on the socket.
func (s *nlSocket) drain() error {
	for {
		n, err := s.recv(false)
		if err != nil || n == 0 {
			return err
		}
	}
}

// nlMessages calls fn for each message in b: its type, flags, sequence
// number and payload. It stops at the first false.
func nlMessages(b []byte, fn func(typ, flags uint16, seq uint32, data []byte) bool) error {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return fmt.Errorf("malformed netlink message: length %d with %d bytes left", l, len(b))
		}
		if !fn(binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:]), binary.NativeEndian.Uint32(b[8:]), b[nlmsgHdrLen:l]) {
			return nil
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return nil
}

// transact sends a batch (msgs[0] is BATCH_BEGIN, the last is BATCH_END,
// as google/nftables frames it) and returns nil once the kernel has
// committed it, or the first refusal as an *nlMsgError.
func (s *nlSocket) transact(msgs []netlink.Message) error {
	if len(msgs) < 3 {
		return nil // nothing between BATCH_BEGIN and BATCH_END
	}
	if err := s.drain(); err != nil {
		return err
	}
	lastOp := len(msgs) - 2
	first := s.encode(msgs, func(i int) bool { return i == lastOp })
	err := s.send()
	if cap(s.out) > keptSendBuffer {
		s.out = nil // a full programming's batch: not worth keeping
	}
	if err != nil {
		return err
	}
	var (
		refused *nlMsgError
		done    bool
	)
	for !done {
		n, err := s.recv(true)
		if err != nil {
			return err
		}
		var perr error
		err = nlMessages(s.in[:n], func(typ, _ uint16, seq uint32, data []byte) bool {
			if typ != unix.NLMSG_ERROR || seq-first >= uint32(len(msgs)) {
				return true // not a reply to this batch
			}
			if len(data) < 4 {
				perr = fmt.Errorf("truncated netlink error message (%d bytes)", len(data))
				return false
			}
			idx := int(seq - first)
			if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
				if refused == nil {
					refused = &nlMsgError{index: idx, errno: syscall.Errno(-code)}
				}
				if idx == 0 {
					done = true // the batch as a whole failed
				}
			}
			if idx == lastOp {
				done = true
			}
			return !done
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
	}
	if err := s.drain(); err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return nil
}

// dump sends one dump request (type and payload) and calls fn with each
// reply's flags and payload until the kernel says it is done.
func (s *nlSocket) dump(typ uint16, data []byte, fn func(flags uint16, data []byte) error) error {
	return s.exchange(typ, netlink.Request|netlink.Dump, false, data, fn)
}

// get sends one request that is not a dump (type and payload), asking
// for an acknowledgement, and calls fn with each reply until the
// acknowledgement.
func (s *nlSocket) get(typ uint16, data []byte, fn func(flags uint16, data []byte) error) error {
	return s.exchange(typ, netlink.Request, true, data, fn)
}

// exchange sends one request and calls fn with each reply until the
// kernel's NLMSG_DONE or acknowledgement.
func (s *nlSocket) exchange(typ uint16, flags netlink.HeaderFlags, ack bool, data []byte, fn func(flags uint16, data []byte) error) error {
	if err := s.drain(); err != nil {
		return err
	}
	seq := s.encode([]netlink.Message{{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: flags},
		Data:   data,
	}}, func(int) bool { return ack })
	if err := s.send(); err != nil {
		return err
	}
	for done := false; !done; {
		n, err := s.recv(true)
		if err != nil {
			return err
		}
		var ferr error
		err = nlMessages(s.in[:n], func(t, flags uint16, mseq uint32, payload []byte) bool {
			if mseq != seq {
				return true
			}
			switch t {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				if len(payload) < 4 {
					if t == unix.NLMSG_ERROR {
						ferr = fmt.Errorf("truncated netlink error message (%d bytes)", len(payload))
					}
				} else if code := int32(binary.NativeEndian.Uint32(payload)); code != 0 {
					ferr = syscall.Errno(-code)
				}
				done = true
				return false
			}
			ferr = fn(flags, payload)
			return ferr == nil
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			_ = s.drain()
			return err
		}
	}
	return nil
}
