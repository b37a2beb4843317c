package calc

import (
	"hash/maphash"
	"slices"
)

// stringLists keeps one copy of each distinct list of strings its users
// hold: the policies matching a local endpoint, and the chain IDs of an
// endpoint's tiers. The endpoints of one application usually have the
// same labels, so the same lists; with the lists shared, a thousand
// endpoints of a hundred applications keep a hundred of each, not a
// thousand (bench/footprint). A shared list is never modified: a user
// whose list changes releases it and acquires the new one. Counts only
// decide when a copy is dropped from the index: a user that holds a list
// it did not acquire shares nothing, and loses nothing.
type stringLists struct {
	seed   maphash.Seed
	byHash map[uint64][]*sharedList
}

type sharedList struct {
	list []string
	refs int
}

func newStringLists() stringLists {
	return stringLists{seed: maphash.MakeSeed(), byHash: map[uint64][]*sharedList{}}
}

func (x *stringLists) hash(l []string) uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	for _, s := range l {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// acquire returns the shared copy of l, equal to it, counting one more
// user. An empty list is returned as it is.
func (x *stringLists) acquire(l []string) []string {
	if len(l) == 0 {
		return l
	}
	h := x.hash(l)
	for _, s := range x.byHash[h] {
		if slices.Equal(s.list, l) {
			s.refs++
			return s.list
		}
	}
	l = slices.Clip(l)
	x.byHash[h] = append(x.byHash[h], &sharedList{list: l, refs: 1})
	return l
}

// release counts one user fewer of the list equal to l, dropping it from
// the index with its last user.
func (x *stringLists) release(l []string) {
	if len(l) == 0 {
		return
	}
	h := x.hash(l)
	bucket := x.byHash[h]
	for i, s := range bucket {
		if !slices.Equal(s.list, l) {
			continue
		}
		if s.refs--; s.refs > 0 {
			return
		}
		if len(bucket) == 1 {
			delete(x.byHash, h)
		} else {
			x.byHash[h] = slices.Delete(bucket, i, i+1)
		}
		return
	}
}
