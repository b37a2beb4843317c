package datastore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HealthState is what the last health check found.
type HealthState int

// Health states.
const (
	// HealthUnknown: no check has run yet (no monitor, or just started).
	// Callers treat it like HealthOK: New already proved that etcd answered.
	HealthUnknown HealthState = iota
	// HealthOK: some member answered and knows a leader.
	HealthOK
	// HealthUnreachable: no member answered.
	HealthUnreachable
	// HealthNoLeader: members answered, but none knows a leader (the
	// cluster lost quorum or is electing one): reads and writes hang.
	HealthNoLeader
)

func (s HealthState) String() string {
	switch s {
	case HealthUnknown:
		return "unknown"
	case HealthOK:
		return "ok"
	case HealthUnreachable:
		return "unreachable"
	case HealthNoLeader:
		return "no leader"
	}
	return fmt.Sprintf("HealthState(%d)", int(s))
}

// Health is the datastore's state as the health monitor last saw it.
type Health struct {
	State HealthState
	// Err is why the datastore is unavailable: an error for which
	// IsUnavailable is true; nil while it is available.
	Err error
	// Since is when the state began (zero while unknown).
	Since time.Time
}

// Available reports whether requests can be expected to succeed (the state
// is OK or not yet known).
func (h Health) Available() bool { return h.State == HealthOK || h.State == HealthUnknown }

// Health-check defaults: a check every second, each bounded by 2 s, so an
// outage is noticed within about 3 s. A check normally costs one small RPC
// on the client's existing connection.
const (
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// healthState is the Client's record of the last check.
type healthState struct {
	mu sync.Mutex // guards h
	h  Health
}

// Health returns the state the last check found (HealthUnknown before the
// first; only MonitorHealth and Check run checks).
func (c *Client) Health() Health {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	return c.health.h
}

// Unavailable returns the error of the last check when it found the
// datastore unavailable, else nil: callers use it to fail fast.
func (c *Client) Unavailable() error {
	if h := c.Health(); !h.Available() {
		return h.Err
	}
	return nil
}

// Check finds out whether etcd is available, within timeout: OK when a
// member answers a local read and knows a leader, else, asking every
// endpoint for its status, NoLeader when members answer but none knows a
// leader, Unreachable when none answers. It does not change what Health
// returns.
//
// The first step uses the client's own connection (one cheap RPC: a
// serializable count of one key, refused by a member without a leader);
// only when it fails does Check dial each endpoint, to tell the two
// failures apart.
func (c *Client) Check(ctx context.Context, timeout time.Duration) Health {
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gctx, gcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), timeout/2)
	_, err := c.cli.Get(gctx, probeKey, clientv3.WithSerializable(), clientv3.WithCountOnly())
	gcancel()
	if err == nil {
		return Health{State: HealthOK, Since: c.now()}
	}
	return c.checkMembers(ctx)
}

// checkMembers asks every endpoint, in parallel, for its status.
func (c *Client) checkMembers(ctx context.Context) Health {
	eps := c.members
	type answer struct {
		ep     string
		leader bool
		err    error
	}
	answers := make(chan answer, len(eps))
	for _, ep := range eps {
		go func() {
			resp, err := c.cli.Status(ctx, ep)
			a := answer{ep: ep, err: err}
			if err == nil {
				a.leader = resp.Leader != 0
			}
			answers <- a
		}()
	}
	var answered []string
	var errs []error
	for range eps {
		a := <-answers
		switch {
		case a.err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", a.ep, a.err))
		case a.leader:
			return Health{State: HealthOK, Since: c.now()}
		default:
			answered = append(answered, a.ep)
		}
	}
	if len(answered) > 0 {
		return Health{State: HealthNoLeader, Err: noLeader(c.endpoints, nil), Since: c.now()}
	}
	return Health{State: HealthUnreachable, Err: unreachable(c.endpoints, joinLine(errs)), Since: c.now()}
}

// HealthConfig sets how MonitorHealth checks; zero fields take the
// defaults.
type HealthConfig struct {
	Interval time.Duration // between checks; default DefaultHealthInterval
	Timeout  time.Duration // bound on one check; default DefaultHealthTimeout
}

// MonitorHealth checks the datastore every interval until ctx ends, when
// it returns nil, keeping what Health returns current. It logs once when
// the datastore becomes unavailable and once when it recovers.
func (c *Client) MonitorHealth(ctx context.Context, cfg HealthConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHealthInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHealthTimeout
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		h := c.Check(ctx, cfg.Timeout)
		if ctx.Err() != nil {
			return nil
		}
		c.setHealth(h)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// setHealth records a check's result, keeping Since while the state holds,
// and logs changes.
func (c *Client) setHealth(h Health) {
	c.health.mu.Lock()
	prev := c.health.h
	if prev.State == h.State {
		h.Since = prev.Since
	}
	c.health.h = h
	c.health.mu.Unlock()
	if prev.State == h.State {
		return
	}
	eps := strings.Join(c.endpoints, ", ")
	switch {
	case h.State == HealthUnreachable:
		c.log.Error("etcd at "+eps+" unreachable: CNI ADDs fail with code 11 until it is back", "err", h.Err)
	case h.State == HealthNoLeader:
		c.log.Error("etcd at "+eps+" has no leader (its members answer but have no quorum): CNI ADDs fail with code 11 until it elects one", "err", h.Err)
	case prev.State != HealthUnknown:
		c.log.Info("etcd at "+eps+" is available again", "was", prev.State.String(), "for", c.now().Sub(prev.Since).Round(time.Millisecond).String())
	}
}

// joinLine joins errors on one line, "; "-separated (errors.Join uses
// newlines, which break log lines and calyxctl's one-line errors).
func joinLine(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &joinedError{msg: strings.Join(msgs, "; "), errs: errs}
}

type joinedError struct {
	msg  string
	errs []error
}

func (e *joinedError) Error() string   { return e.msg }
func (e *joinedError) Unwrap() []error { return e.errs }
