package datastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWrapErrClassifiesOutages(t *testing.T) {
	eps := []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}
	newClient := func(h HealthState) *Client {
		c := &Client{endpoints: eps, log: slog.New(slog.DiscardHandler), now: time.Now}
		switch h {
		case HealthNoLeader:
			c.setHealth(Health{State: h, Err: noLeader(eps, nil)})
		case HealthUnreachable:
			c.setHealth(Health{State: h, Err: unreachable(eps, errors.New("dial failed"))})
		}
		return c
	}
	deadline := fmt.Errorf("rpc: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name       string
		health     HealthState
		err        error
		noLeader   bool
		unreach    bool
		unavail    bool
		msgContain string
	}{
		{"no leader", HealthUnknown, rpctypes.ErrNoLeader, true, false, true, "has no leader"},
		{"leader changed", HealthOK, rpctypes.ErrLeaderChanged, true, false, true, "has no leader"},
		{"timeout due to leader fail", HealthOK, rpctypes.ErrTimeoutDueToLeaderFail, true, false, true, "has no leader"},
		{"server timeout, health ok", HealthOK, rpctypes.ErrTimeout, false, false, true, "did not complete the request in time"},
		{"server gave up at the deadline, health ok", HealthOK, status.Error(codes.Unknown, context.DeadlineExceeded.Error()), false, false, true, "did not complete the request in time"},
		{"server gave up at the deadline, no leader known", HealthNoLeader, status.Error(codes.Unknown, context.DeadlineExceeded.Error()), true, false, true, "has no leader"},
		{"server timeout, no leader known", HealthNoLeader, rpctypes.ErrTimeout, true, false, true, "has no leader"},
		{"grpc unavailable", HealthOK, status.Error(codes.Unavailable, "connection refused"), false, true, true, "unreachable"},
		{"deadline, health ok", HealthOK, deadline, false, false, false, "context deadline exceeded"},
		{"deadline, unreachable known", HealthUnreachable, deadline, false, true, true, "unreachable"},
		{"deadline, no leader known", HealthNoLeader, deadline, true, false, true, "has no leader"},
		{"other", HealthNoLeader, errors.New("boom"), false, false, false, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newClient(tc.health).wrapErr("reading x", tc.err)
			if IsNoLeader(err) != tc.noLeader || IsUnreachable(err) != tc.unreach || IsUnavailable(err) != tc.unavail {
				t.Errorf("%v: IsNoLeader %v, IsUnreachable %v, IsUnavailable %v; want %v, %v, %v",
					err, IsNoLeader(err), IsUnreachable(err), IsUnavailable(err), tc.noLeader, tc.unreach, tc.unavail)
			}
			if !strings.HasPrefix(err.Error(), "reading x: ") || !strings.Contains(err.Error(), tc.msgContain) {
				t.Errorf("message %q: want it to start with the context and say %q", err, tc.msgContain)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}
