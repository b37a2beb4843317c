package datastore

import (
	"context"
	"fmt"

	"github.com/calyx-net/calyx/internal/api"
	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// OpAction is what one batch operation does.
type OpAction int

// Batch actions. Each has the guard of the single-resource method of the
// same name.
const (
	OpCreate OpAction = iota + 1 // the resource must not exist
	OpUpdate                     // the stored copy must be at the resource's resourceVersion
	OpApply                      // upsert, keeping the stored uid and creationTimestamp
	OpDelete                     // the resource must exist (and be at its resourceVersion, if given)
)

func (a OpAction) String() string {
	switch a {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpApply:
		return "apply"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("OpAction(%d)", int(a))
}

// Op is one operation of a Batch. For OpDelete only the resource's kind,
// name and (optional) resourceVersion are used.
type Op struct {
	Action   OpAction
	Resource api.Resource
}

// maxBatchAttempts bounds how often Batch retries when an apply
// operation's guess about its key was wrong.
const maxBatchAttempts = 10

// batchItem is one operation being prepared.
type batchItem struct {
	Op
	index        int
	kind         api.KindInfo
	key, name    string
	rev          int64      // guard from resourceVersion (update; delete if given)
	guard        applyGuard // apply: this attempt's guard
	uid, created string
	out          api.Resource
}

func (it *batchItem) describe() string {
	return fmt.Sprintf("batch operation %d (%s %s %q)", it.index, it.Action, it.kind.Kind, it.name)
}

// Batch performs ops in one etcd transaction: every guard is in its If and
// every write in its Then, so either all ops are written or none is. It
// returns, in op order, the stored copy of each written resource (with the
// transaction's revision as resourceVersion) and, for a delete, the deleted
// resource. A failed guard fails the whole batch with the predicate of the
// single-resource method (IsAlreadyExists, IsConflict, IsNotFound) and names
// the operation; only a concurrent change to an apply operation's key makes
// Batch re-read and retry, at most 10 times. A batch larger than the etcd
// server allows (--max-txn-ops, 128 by default; the embedded etcd allows
// 2048) fails with an error saying so: it is never split.
func (c *Client) Batch(ctx context.Context, ops []Op) ([]api.Resource, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	items, err := c.batchItems(ops)
	if err != nil {
		return nil, err
	}
	if err := c.batchIdentities(ctx, items); err != nil {
		return nil, err
	}
	for range maxBatchAttempts {
		cmps := make([]clientv3.Cmp, 0, len(items))
		thens := make([]clientv3.Op, 0, len(items))
		elses := make([]clientv3.Op, 0, len(items))
		for _, it := range items {
			cmp, then, els, err := it.txnOps()
			if err != nil {
				return nil, err
			}
			cmps, thens, elses = append(cmps, cmp), append(thens, then), append(elses, els)
		}
		resp, err := c.cli.Txn(ctx).If(cmps...).Then(thens...).Else(elses...).Commit()
		if err != nil {
			return nil, c.wrapErr(fmt.Sprintf("writing a batch of %d operations", len(items)), err)
		}
		if resp.Succeeded {
			return c.batchResults(items, resp), nil
		}
		if err := c.batchFailure(items, resp.Responses); err != nil {
			return nil, err
		}
	}
	return nil, &storeError{code: codeConflict, msg: fmt.Sprintf(
		"writing a batch of %d operations: gave up after %d attempts, other writers kept changing its keys", len(items), maxBatchAttempts)}
}

// batchItems checks the operations and resolves their keys.
func (c *Client) batchItems(ops []Op) ([]*batchItem, error) {
	items := make([]*batchItem, len(ops))
	seen := make(map[string]int, len(ops))
	for i, op := range ops {
		kind, key, err := target(op.Resource)
		if err != nil {
			return nil, fmt.Errorf("batch operation %d: %w", i, err)
		}
		it := &batchItem{Op: op, index: i, kind: kind, key: key, name: op.Resource.GetObjectMeta().Name}
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("batch operations %d and %d both change %s %q", j, i, kind.Kind, it.name)
		}
		seen[key] = i
		m := op.Resource.GetObjectMeta()
		switch op.Action {
		case OpCreate:
			it.uid, it.created = newUID(), c.timestamp()
		case OpUpdate:
			if m.ResourceVersion == "" {
				return nil, fmt.Errorf("%s: metadata.resourceVersion is required", it.describe())
			}
			fallthrough
		case OpDelete:
			if m.ResourceVersion != "" {
				if it.rev, err = parseRevision(kind.Kind, it.name, m.ResourceVersion); err != nil {
					return nil, fmt.Errorf("batch operation %d: %w", i, err)
				}
			}
			it.uid, it.created = m.UID, m.CreationTimestamp
		case OpApply:
			it.guard, it.uid, it.created = c.applyStart(kind, m)
		default:
			return nil, fmt.Errorf("batch operation %d: unknown action %d", i, int(op.Action))
		}
		items[i] = it
	}
	return items, nil
}

// batchIdentities reads, in one round trip, the stored uid and
// creationTimestamp of update operations whose resource lacks them.
func (c *Client) batchIdentities(ctx context.Context, items []*batchItem) error {
	var need []*batchItem
	var gets []clientv3.Op
	for _, it := range items {
		if it.Action == OpUpdate && (it.uid == "" || it.created == "") {
			need = append(need, it)
			gets = append(gets, clientv3.OpGet(it.key))
		}
	}
	if len(need) == 0 {
		return nil
	}
	resp, err := c.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return c.wrapErr("reading the resources a batch updates", err)
	}
	for i, it := range need {
		kvs := resp.Responses[i].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return fmt.Errorf("%s: %w", it.describe(), notFound(it.kind.Kind, it.name))
		}
		if kvs[0].ModRevision != it.rev {
			return fmt.Errorf("%s: %w", it.describe(), conflict(it.kind.Kind, it.name, kvs[0].ModRevision, it.Resource.GetObjectMeta().ResourceVersion))
		}
		su, sc := storedIdentity(kvs[0].Value)
		it.uid, it.created = c.identity(firstNonEmpty(it.uid, su), firstNonEmpty(it.created, sc))
	}
	return nil
}

// txnOps returns the guard, the write and the failure read of one item,
// encoding the resource for this attempt.
func (it *batchItem) txnOps() (clientv3.Cmp, clientv3.Op, clientv3.Op, error) {
	keysOnly := clientv3.OpGet(it.key, clientv3.WithKeysOnly())
	if it.Action == OpDelete {
		cmp := clientv3.Compare(clientv3.Version(it.key), ">", 0)
		if it.rev != 0 {
			cmp = clientv3.Compare(clientv3.ModRevision(it.key), "=", it.rev)
		}
		return cmp, clientv3.OpDelete(it.key, clientv3.WithPrevKV()), keysOnly, nil
	}
	out, val, err := encode(it.Resource, it.uid, it.created)
	if err != nil {
		return clientv3.Cmp{}, clientv3.Op{}, clientv3.Op{}, fmt.Errorf("%s: %w", it.describe(), err)
	}
	it.out = out
	put := clientv3.OpPut(it.key, string(val))
	switch it.Action {
	case OpCreate:
		return clientv3.Compare(clientv3.Version(it.key), "=", 0), put, keysOnly, nil
	case OpUpdate:
		return clientv3.Compare(clientv3.ModRevision(it.key), "=", it.rev), put, keysOnly, nil
	}
	// OpApply: the failure read carries the value, for the stored identity.
	return it.guard.cmp(it.key), put, clientv3.OpGet(it.key), nil
}

// batchFailure explains a failed batch from its failure reads: the first
// failed create, update or delete guard, in op order, is the error. If only
// apply guards failed, it updates their expectations and returns nil so
// that the batch is retried.
func (c *Client) batchFailure(items []*batchItem, reads []*etcdserverpb.ResponseOp) error {
	for i, it := range items {
		var kv *mvccpb.KeyValue
		var cur int64
		if kvs := reads[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			kv, cur = kvs[0], kvs[0].ModRevision
		}
		var err error
		switch it.Action {
		case OpCreate:
			if cur != 0 {
				err = alreadyExists(it.kind.Kind, it.name)
			}
		case OpUpdate, OpDelete:
			switch {
			case cur == 0:
				err = notFound(it.kind.Kind, it.name)
			case it.rev != 0 && cur != it.rev:
				err = conflict(it.kind.Kind, it.name, cur, it.Resource.GetObjectMeta().ResourceVersion)
			}
		case OpApply:
			if !it.guard.holds(kv) {
				it.guard, it.uid, it.created = c.applyNext(kv)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", it.describe(), err)
		}
	}
	return nil
}

// batchResults builds the returned resources of a committed batch.
func (c *Client) batchResults(items []*batchItem, resp *clientv3.TxnResponse) []api.Resource {
	out := make([]api.Resource, len(items))
	for i, it := range items {
		if it.Action == OpDelete {
			prev := resp.Responses[i].GetResponseDeleteRange().GetPrevKvs()
			if len(prev) > 0 {
				out[i] = c.decodeDeleted(it.kind, it.name, prev[0])
				continue
			}
			out[i] = it.Resource.DeepCopyResource()
			continue
		}
		out[i] = written(it.out, resp.Header.Revision)
	}
	return out
}
