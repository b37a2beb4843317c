package datastore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Two raw operations for the IPAM allocator, which counts etcd round trips:
// its common allocation must be exactly one.
//
//   - ReadRanges reads several keys and prefixes in one transaction, so the
//     allocator can load pools, the IPAM settings, a node and that node's
//     affinities at one revision in one round trip, and list which blocks
//     exist without their values (keys only).
//   - CASRead is CAS that, when a guard fails, also returns the current
//     state of every guarded key from the same transaction. A writer that
//     keeps a cache of the keys it guards therefore learns exactly what
//     changed without another request, and retries at once.

// RawRange names one read of ReadRanges: the single key Key or, with
// Prefix, every key under Key. KeysOnly leaves the values out (RawKV.Value
// is nil), which makes listing thousands of keys cheap.
type RawRange struct {
	Key      string
	Prefix   bool
	KeysOnly bool
}

// ReadRanges reads every range in one transaction, so all results are from
// the same revision, which it returns. Result i holds the keys of
// ranges[i] sorted by key (empty when nothing matched). etcd limits the
// operations of one transaction (--max-txn-ops, 128 by default outside the
// embedded etcd): callers keep len(ranges) at or below 100.
func (c *Client) ReadRanges(ctx context.Context, ranges []RawRange) ([][]RawKV, int64, error) {
	if len(ranges) == 0 {
		return nil, 0, fmt.Errorf("reading raw ranges: nothing to read")
	}
	ops := make([]clientv3.Op, len(ranges))
	for i, r := range ranges {
		if r.Key == "" {
			return nil, 0, fmt.Errorf("reading raw ranges: range %d has an empty key", i)
		}
		var opts []clientv3.OpOption
		if r.Prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		if r.KeysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		ops[i] = clientv3.OpGet(r.Key, opts...)
	}
	resp, err := c.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, c.wrapErr(fmt.Sprintf("reading %d raw ranges (first %s)", len(ranges), ranges[0].Key), err)
	}
	out := make([][]RawKV, len(ranges))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		out[i] = make([]RawKV, len(kvs))
		for j, kv := range kvs {
			out[i][j] = RawKV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
		}
	}
	return out, resp.Header.Revision, nil
}

// CASRead writes puts and deletes in one transaction if every cond holds,
// like CAS. When some cond fails it writes nothing and returns, from the
// same transaction, the current state of every cond's key: current[i]
// belongs to conds[i] and has a nil Value and ModRevision 0 when that key
// does not exist. On success current is nil and rev is every put key's new
// ModRevision.
func (c *Client) CASRead(ctx context.Context, conds []Cond, puts []RawPut, deletes []string) (ok bool, rev int64, current []RawKV, err error) {
	if len(puts)+len(deletes) == 0 {
		return false, 0, nil, fmt.Errorf("compare-and-swap with nothing to write")
	}
	cmps := make([]clientv3.Cmp, len(conds))
	gets := make([]clientv3.Op, len(conds))
	for i, cd := range conds {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(cd.Key), "=", cd.ModRevision)
		gets[i] = clientv3.OpGet(cd.Key)
	}
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, p := range puts {
		ops = append(ops, clientv3.OpPut(p.Key, string(p.Value)))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(k))
	}
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(ops...).Else(gets...).Commit()
	if err != nil {
		return false, 0, nil, c.wrapErr(fmt.Sprintf("compare-and-swap of %d keys", len(ops)), err)
	}
	if resp.Succeeded {
		return true, resp.Header.Revision, nil, nil
	}
	current = make([]RawKV, len(conds))
	for i, r := range resp.Responses {
		current[i] = RawKV{Key: conds[i].Key}
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			current[i].Value = kvs[0].Value
			current[i].ModRevision = kvs[0].ModRevision
		}
	}
	return false, resp.Header.Revision, current, nil
}
