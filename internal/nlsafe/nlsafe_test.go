package nlsafe

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
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
