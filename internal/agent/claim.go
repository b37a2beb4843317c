package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// The node-name claim. A node name is held by one live calyx-node at a
// time: before it writes anything, calyx-node takes a lease-backed claim
// on its name in etcd (datastore.Claim under /calyx/claims/nodes/NAME) and
// keeps it alive while it runs. Without it, a second calyx-node started
// with a live node's name (a copied unit file, a typo) rewrites the Node,
// finds none of that node's veths on its own host and garbage-collects
// every endpoint and address of the first one.
//
// The claim records the holder's host identity (DIR/host-id), address and
// start time. A claim of another host is refused while its lease lives; a
// claim of this host (a restart after a crash or kill -9, whose lease has
// not expired yet) is replaced at once. A stopped calyx-node leaves its
// lease to expire, so that a restart never opens a window for another host
// to take the name. Garbage collection releases nothing unless the claim
// is held, and the allocator's writes are conditioned on it in the same
// etcd transaction (fencedStore).

// DefaultClaimTTL is how long a node-name claim outlives its holder.
const DefaultClaimTTL = 15 * time.Second

// claimWait bounds how long taking the claim may take: a calyx-node that
// cannot claim its name says so within it.
const claimWait = 20 * time.Second

// ErrNodeNameHeld says that the node name is held by a live calyx-node on
// another host. Test for it with IsNodeNameHeld.
var ErrNodeNameHeld = errors.New("node name held by another host")

// IsNodeNameHeld reports whether err says that the node name is held by a
// live calyx-node on another host.
func IsNodeNameHeld(err error) bool { return errors.Is(err, ErrNodeNameHeld) }

// errClaimLost says that this calyx-node no longer holds its node's claim.
var errClaimLost = errors.New("this calyx-node no longer holds its node name")

// errClaimLapsed says that this calyx-node's claim lapsed and nobody else
// took it: its lease expired while etcd was out of reach for longer than
// the claim's TTL, and keepClaim is taking it again. Unlike errClaimLost
// it passes: requests that fail with it are worth retrying (CNI code 11).
var errClaimLapsed = errors.New("this calyx-node's claim on its node name lapsed while etcd was out of reach; " +
	"it is being taken again (retry in a moment)")

// fencedError is the error of a fenced write refused because the claim is
// not as this process wrote it: errClaimLapsed when the key is gone (lost
// has no holder), errClaimLost when another holder wrote it.
func fencedError(lost *datastore.ClaimLostError) error {
	if lost.Holder == nil {
		return fmt.Errorf("%w: %w", errClaimLapsed, lost)
	}
	return fmt.Errorf("%w: %w", errClaimLost, lost)
}

func nodeClaimKey(node string) string { return datastore.ClaimPrefix + "nodes/" + node }

// nodeHolder is the value of a node-name claim.
type nodeHolder struct {
	HostID   string `json:"hostID"`
	Address  string `json:"address,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Since    string `json:"since"`
}

// where names the holder for an operator.
func (h nodeHolder) where() string {
	switch {
	case h.Address != "" && h.Hostname != "":
		return fmt.Sprintf("%s (host %s, host id %s)", h.Address, h.Hostname, h.HostID)
	case h.Address != "":
		return fmt.Sprintf("%s (host id %s)", h.Address, h.HostID)
	case h.Hostname != "":
		return fmt.Sprintf("host %s (host id %s)", h.Hostname, h.HostID)
	}
	return "host id " + h.HostID
}

func parseHolder(b []byte) nodeHolder {
	var h nodeHolder
	if err := json.Unmarshal(b, &h); err != nil || h.HostID == "" {
		return nodeHolder{HostID: "unknown", Hostname: string(b)}
	}
	return h
}

// nodeHeldError is ErrNodeNameHeld with the holder's details.
type nodeHeldError struct {
	node   string
	holder nodeHolder
	ttl    time.Duration // the claim TTL this calyx-node uses
	left   time.Duration // the holder's lease's time left, when known
	err    error
}

func (e *nodeHeldError) Error() string {
	left := ""
	if e.left > 0 {
		left = fmt.Sprintf(" (in %s at most from now)", e.left)
	}
	return fmt.Sprintf("node %s is held by a live calyx-node at %s since %s: stop that calyx-node, or pick another --name; "+
		"if that host is gone for good, its claim expires %s after it stopped%s",
		e.node, e.holder.where(), e.holder.Since, e.ttl, left)
}

func (e *nodeHeldError) Unwrap() []error { return []error{ErrNodeNameHeld, e.err} }

// claimNode takes the node-name claim for cfg.NodeName on behalf of the
// host hostID, replacing a claim of the same host at once.
func claimNode(ctx context.Context, store *datastore.Client, cfg Config, hostID string, ttl time.Duration, log *slog.Logger) (*datastore.Claim, error) {
	me := nodeHolder{HostID: hostID, PID: os.Getpid(), Since: time.Now().UTC().Format(time.RFC3339)}
	if p, err := netip.ParsePrefix(cfg.NodeIPv4); err == nil {
		me.Address = p.Addr().String()
	}
	me.Hostname, _ = os.Hostname()
	value, err := json.Marshal(me)
	if err != nil {
		return nil, fmt.Errorf("encoding the node claim: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	claim, err := store.Claim(cctx, datastore.ClaimSpec{
		Key: nodeClaimKey(cfg.NodeName), Value: value, TTL: ttl,
		Replace: func(b []byte) bool { return parseHolder(b).HostID == hostID },
	})
	var held *datastore.ClaimHeldError
	switch {
	case errors.As(err, &held):
		return nil, &nodeHeldError{node: cfg.NodeName, holder: parseHolder(held.Holder), ttl: ttl, left: time.Duration(held.TTL) * time.Second, err: err}
	case err != nil:
		return nil, fmt.Errorf("claiming node name %s: %w", cfg.NodeName, err)
	}
	log.Info("node name claimed", "node", cfg.NodeName, "key", nodeClaimKey(cfg.NodeName), "hostID", hostID, "ttl", ttl)
	return claim, nil
}

// keepClaim keeps the claim alive until ctx ends. When another holder
// took it (the lease expired while etcd was out of reach, and another
// calyx-node claimed the name), it returns an error that stops calyx-node.
func keepClaim(ctx context.Context, claim *datastore.Claim, node string, log *slog.Logger) error {
	retrying := false // since the last re-take: log its first failure only
	err := claim.Run(ctx, datastore.ClaimEvents{
		Retaken: func() {
			retrying = false
			log.Warn("node name claimed again after its lease expired (etcd was out of reach for longer than the claim's TTL)", "node", node)
		},
		Retrying: func(err error) {
			if !retrying {
				log.Warn("node name claim lapsed (etcd out of reach for longer than the claim's TTL): taking it again once etcd answers; "+
					"meanwhile requests that write to etcd fail with try-again-later", "node", node, "err", err)
			} else {
				log.Debug("taking the node name claim again failed", "node", node, "err", err)
			}
			retrying = true
		},
	})
	var lost *datastore.ClaimLostError
	if errors.As(err, &lost) {
		who := "nobody (it was deleted)"
		if lost.Holder != nil {
			who = "a calyx-node at " + parseHolder(lost.Holder).where()
		}
		log.Error("node name claim lost: stopping garbage collection and exiting", "node", node, "holder", who)
		return fmt.Errorf("node %s is now held by %s: %w; stopping rather than acting for a node another calyx-node runs "+
			"(check for two hosts started with --name %s)", node, who, errClaimLost, node)
	}
	if err != nil {
		return fmt.Errorf("keeping the claim on node name %s: %w", node, err)
	}
	return nil
}

// nodeClaim tells garbage collection whether this process still holds its
// node's claim. *datastore.Claim satisfies it.
type nodeClaim interface {
	Check(ctx context.Context) error
}

var _ nodeClaim = (*datastore.Claim)(nil)

// checkClaim returns nil if this process holds its node's claim.
func (s *service) checkClaim(ctx context.Context) error {
	if s.claim == nil {
		return fmt.Errorf("checking the claim on node name %s: %w (no claim taken)", s.node, errClaimLost)
	}
	if err := s.claim.Check(ctx); err != nil {
		if datastore.IsClaimLost(err) {
			return fmt.Errorf("node %s: %w: %w", s.node, errClaimLost, err)
		}
		return fmt.Errorf("checking the claim on node name %s: %w", s.node, err)
	}
	return nil
}

// fencedStore is the datastore of the allocator and the local API: every
// IPAM compare-and-swap, every create and update (endpoints, and the
// profiles of new networks) and every endpoint delete also requires the
// node claim to be as this process wrote it, in the same etcd transaction,
// so that a process that lost its node name writes and releases nothing.
type fencedStore struct {
	*datastore.Client
	fence func() datastore.Cond
}

// fenced runs write with the current fence, and once more with a newer
// one when the claim was taken again (a new lease) since the first was
// read. A refusal by the fence is errClaimLost or errClaimLapsed.
// what names the write for an error; it is called only on failure, so that
// a write that succeeds (an ADD's endpoint) formats nothing.
func (f fencedStore) fenced(what func() string, write func(datastore.Cond) (api.Resource, error)) (api.Resource, error) {
	fence := f.fence()
	r, err := write(fence)
	if now := f.fence(); datastore.IsClaimLost(err) && now.ModRevision != fence.ModRevision {
		r, err = write(now)
	}
	var lost *datastore.ClaimLostError
	if errors.As(err, &lost) {
		return nil, fmt.Errorf("%s: %w", what(), fencedError(lost))
	}
	return r, err
}

// Create creates r if the claim holds.
func (f fencedStore) Create(ctx context.Context, r api.Resource) (api.Resource, error) {
	return f.fenced(func() string { return fmt.Sprintf("creating %s %q", r.GetKind(), r.GetObjectMeta().Name) }, func(fence datastore.Cond) (api.Resource, error) {
		return f.CreateFenced(ctx, r, fence)
	})
}

// Update updates r if the claim holds.
func (f fencedStore) Update(ctx context.Context, r api.Resource) (api.Resource, error) {
	return f.fenced(func() string { return fmt.Sprintf("updating %s %q", r.GetKind(), r.GetObjectMeta().Name) }, func(fence datastore.Cond) (api.Resource, error) {
		return f.UpdateFenced(ctx, r, fence)
	})
}

// Delete deletes a resource if the claim holds; with a resourceVersion it
// is the plain guarded delete.
func (f fencedStore) Delete(ctx context.Context, kind api.KindInfo, name, resourceVersion string) (api.Resource, error) {
	if resourceVersion != "" {
		return f.Client.Delete(ctx, kind, name, resourceVersion)
	}
	return f.fenced(func() string { return fmt.Sprintf("deleting %s %q", kind.Kind, name) }, func(fence datastore.Cond) (api.Resource, error) {
		return f.DeleteFenced(ctx, kind, name, fence)
	})
}

func (f fencedStore) CASRead(ctx context.Context, conds []datastore.Cond, puts []datastore.RawPut, deletes []string) (bool, int64, []datastore.RawKV, error) {
	fence := f.fence()
	ok, rev, cur, err := f.Client.CASRead(ctx, append(slices.Clip(conds), fence), puts, deletes)
	if err != nil || ok {
		return ok, rev, cur, err
	}
	last := cur[len(cur)-1]
	if now := f.fence(); now.ModRevision != fence.ModRevision && last.ModRevision == now.ModRevision {
		// The claim was taken again (a new lease) since fence was read.
		return false, rev, cur[:len(cur)-1], nil
	}
	if last.ModRevision != fence.ModRevision {
		var holder []byte
		if last.ModRevision != 0 {
			holder = last.Value
		}
		return false, rev, nil, fmt.Errorf("writing IPAM state: %w", fencedError(&datastore.ClaimLostError{Key: fence.Key, Holder: holder}))
	}
	return false, rev, cur[:len(cur)-1], nil
}
