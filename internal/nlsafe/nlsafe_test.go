package nlsafe

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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
