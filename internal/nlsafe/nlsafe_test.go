package nlsafe

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func TestRetry(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		errs      []error // returned by successive attempts; nil = success
		wantCalls int
		wantErr   func(error) bool
	}{
		{name: "first try", errs: []error{nil}, wantCalls: 1},
		{name: "interrupted then consistent", errs: []error{netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, nil}, wantCalls: 3},
		{name: "always interrupted", errs: []error{netlink.ErrDumpInterrupted}, wantCalls: maxAttempts, wantErr: IsInterrupted},
		{name: "other error is not retried", errs: []error{boom}, wantCalls: 1, wantErr: func(err error) bool { return errors.Is(err, boom) && !IsInterrupted(err) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			out, err := retry("things", func() ([]int, error) {
				e := tc.errs[min(calls, len(tc.errs)-1)]
				calls++
				return []int{calls}, e
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != nil && (err == nil || !tc.wantErr(err)):
				t.Fatalf("error %v does not satisfy the predicate", err)
			case tc.wantErr == nil && (len(out) != 1 || out[0] != calls):
				t.Errorf("result %v, want the last attempt's", out)
			case tc.wantErr != nil && out != nil:
				t.Errorf("result %v returned with an error", out)
			}
		})
	}
}

func TestLinkBrief(t *testing.T) {
	ne := nl.NativeEndian()
	hdr := make([]byte, 16) // ifinfomsg: index 7, IFF_UP
	ne.PutUint32(hdr[4:8], 7)
	ne.PutUint32(hdr[8:12], 1)
	attr := func(typ uint16, data string) []byte {
		l := 4 + len(data)
		b := make([]byte, 4)
		ne.PutUint16(b[0:2], uint16(l))
		ne.PutUint16(b[2:4], typ)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	long := attr(3, "x")
	ne.PutUint16(long[0:2], 200)
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
		ok   bool
	}{
		{"name after another attribute", cat(hdr, attr(4, "\x00\x05\x00\x00"), attr(3, "calyx01\x00")), "calyx01", true},
		{"no name", cat(hdr, attr(4, "\x00\x05\x00\x00")), "", false},
		{"short header", hdr[:8], "", false},
		{"attribute longer than the message", cat(hdr, long), "", false},
	} {
		got, ok := linkBrief(tc.msg)
		if got.Name != tc.want || ok != tc.ok || ok && (got.Index != 7 || got.Flags != 1) {
			t.Errorf("%s: %+v %v, want %q (index 7, flags 1) %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// nlmsg is one netlink message: header (length, type, flags, seq) and
// payload, padded to 4 bytes.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	ne := nl.NativeEndian()
	b := make([]byte, 16, 16+len(payload)+3)
	ne.PutUint32(b[0:4], uint32(16+len(payload)))
	ne.PutUint16(b[4:6], typ)
	ne.PutUint16(b[6:8], flags)
	ne.PutUint32(b[8:12], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseReply(t *testing.T) {
	ne := nl.NativeEndian()
	link := func(index int, name string) []byte {
		b := make([]byte, 16, 64) // ifinfomsg
		ne.PutUint32(b[4:8], uint32(index))
		a := make([]byte, 4)
		ne.PutUint16(a[0:2], uint16(4+len(name)+1))
		ne.PutUint16(a[2:4], unix.IFLA_IFNAME)
		return append(append(append(b, a...), name...), 0)
	}
	errno := func(e unix.Errno) []byte {
		b := make([]byte, 4)
		ne.PutUint32(b, uint32(-int32(e)))
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name              string
		in                []byte
		want              []string
		done, interrupted bool
		err               string
	}{
		{name: "a part", in: cat(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 1, link(1, "lo")), nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 1, link(9, "calyx0a"))), want: []string{"lo", "calyx0a"}},
		{name: "the last part", in: cat(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 1, link(9, "calyx0a")), nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errno(0))), want: []string{"calyx0a"}, done: true},
		{name: "another request's messages", in: cat(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 2, link(9, "calyx0a")), nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 2, errno(0)))},
		{name: "interrupted", in: cat(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR, 1, link(1, "lo")), nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errno(0))), want: []string{"lo"}, done: true, interrupted: true},
		{name: "a reply of one message", in: nlmsg(unix.RTM_NEWLINK, 0, 1, link(9, "calyx0a")), want: []string{"calyx0a"}, done: true},
		{name: "no such link", in: nlmsg(unix.NLMSG_ERROR, 0, 1, errno(unix.ENODEV)), err: "no such device"},
		{name: "an error", in: nlmsg(unix.NLMSG_ERROR, 0, 1, errno(unix.EPERM)), err: "operation not permitted"},
		{name: "a failed dump", in: nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errno(unix.EMSGSIZE)), err: "message too long"},
		{name: "a length past the datagram", in: nlmsg(unix.RTM_NEWLINK, 0, 1, link(1, "lo"))[:20], err: "remain"},
	} {
		var links []LinkBrief
		done, intr, err := parseReply(tc.in, 1, unix.RTM_NEWLINK, addLink(&links))
		var got []string
		for _, l := range links {
			got = append(got, l.Name)
		}
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !slices.Equal(got, tc.want) || done != tc.done || intr != tc.interrupted:
			t.Errorf("%s: %q done %v interrupted %v, want %q %v %v", tc.name, got, done, intr, tc.want, tc.done, tc.interrupted)
		}
	}
}
