package datastore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Raw keys. IPAM keeps its blocks, affinities and handles as raw JSON
// documents under IPAMPrefix ("/calyx/ipam/v1/...") rather than as typed
// resources: they are written by the allocator alone, many per operation,
// and always under a compare-and-swap on their ModRevision. The raw API is
// deliberately small: read one key, list a prefix, and one CAS transaction.
// Raw writes should stay outside Prefix, which holds the typed resources.

// RawKV is one stored key with its value and the revision of its last
// change.
type RawKV struct {
	Key         string
	Value       []byte
	ModRevision int64
}

// Cond guards a CAS: Key's ModRevision must equal ModRevision, where 0
// means that Key must not exist.
type Cond struct {
	Key         string
	ModRevision int64
}

// RawPut writes Value at Key.
type RawPut struct {
	Key   string
	Value []byte
}

// GetRaw returns the value of key and its ModRevision. A missing key is not
// an error: it returns a nil value and revision 0, which is exactly the
// Cond that says "must still not exist".
func (c *Client) GetRaw(ctx context.Context, key string) ([]byte, int64, error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, c.wrapErr(fmt.Sprintf("reading %s", key), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// ListRaw returns every key under prefix, sorted by key, and the revision
// of the read.
func (c *Client) ListRaw(ctx context.Context, prefix string) ([]RawKV, int64, error) {
	if prefix == "" {
		return nil, 0, fmt.Errorf("listing raw keys: empty prefix")
	}
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, c.wrapErr(fmt.Sprintf("listing %s", prefix), err)
	}
	out := make([]RawKV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = RawKV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// CAS writes puts and deletes in one transaction if every cond holds. It
// reports whether it wrote (false: some cond failed, nothing was written;
// re-read and retry) and the etcd revision after the transaction, which is
// every put key's new ModRevision when ok.
func (c *Client) CAS(ctx context.Context, conds []Cond, puts []RawPut, deletes []string) (bool, int64, error) {
	if len(puts)+len(deletes) == 0 {
		return false, 0, fmt.Errorf("compare-and-swap with nothing to write")
	}
	cmps := make([]clientv3.Cmp, len(conds))
	for i, cd := range conds {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(cd.Key), "=", cd.ModRevision)
	}
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, p := range puts {
		ops = append(ops, clientv3.OpPut(p.Key, string(p.Value)))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(k))
	}
	resp, err := c.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, 0, c.wrapErr(fmt.Sprintf("compare-and-swap of %d keys", len(ops)), err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}
