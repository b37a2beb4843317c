package datastore

import "github.com/calyx-net/calyx/internal/api"

// PreparedCreate is the creation of a resource encoded for a transaction
// of someone else's (CASRead): IPAM commits a new WorkloadEndpoint with
// the addresses it allocates in one transaction, so that an ADD costs one
// etcd commit rather than two.
type PreparedCreate struct {
	// Put stores the resource, with a new uid and creationTimestamp.
	Put RawPut
	// Cond requires that the resource does not exist yet.
	Cond Cond
	out  api.Resource
}

// PrepareCreate encodes r for creation, as Create would store it. It does
// not validate r: the caller does.
func (c *Client) PrepareCreate(r api.Resource) (PreparedCreate, error) {
	_, key, err := target(r)
	if err != nil {
		return PreparedCreate{}, err
	}
	out, val, err := encode(r, newUID(), c.timestamp())
	if err != nil {
		return PreparedCreate{}, err
	}
	return PreparedCreate{Put: RawPut{Key: key, Value: val}, Cond: Cond{Key: key}, out: out}, nil
}

// Written returns the stored copy once the transaction that carried Put
// committed at rev, as Create returns it.
func (p PreparedCreate) Written(rev int64) api.Resource {
	return written(cloneResource(p.out), rev)
}
