package datastore

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/calyx-net/calyx/internal/api"
)

// Key layout. Every typed resource lives at Prefix + lower-case kind + "/" +
// name, e.g. /calyx/v1/ippool/pool-a. IPAM keeps raw JSON documents under
// IPAMPrefix (blocks, affinities, handles), read and written with GetRaw,
// ListRaw and CAS; claims (lease-bound keys, see lease.go) live under
// ClaimPrefix; nothing else is stored under /calyx/.
const (
	Prefix     = "/calyx/v1/"
	IPAMPrefix = "/calyx/ipam/v1/"
)

// KindPrefix returns the key prefix under which every resource of kind
// lives, e.g. "/calyx/v1/ippool/".
func KindPrefix(kind api.KindInfo) string {
	return Prefix + kindSegment(kind.Kind) + "/"
}

// ResourceKey returns the key of the named resource of kind, e.g.
// "/calyx/v1/ippool/pool-a".
func ResourceKey(kind api.KindInfo, name string) string {
	return KindPrefix(kind) + name
}

func kindSegment(kind string) string { return strings.ToLower(kind) }

// kindTables maps kind names and key segments to KindInfo. Built once: the
// kind table in package api is immutable.
type kindTables struct {
	byKind    map[string]api.KindInfo // "IPPool"
	bySegment map[string]api.KindInfo // "ippool"
}

var kindTable = sync.OnceValue(func() kindTables {
	t := kindTables{byKind: map[string]api.KindInfo{}, bySegment: map[string]api.KindInfo{}}
	for _, k := range api.Kinds() {
		t.byKind[k.Kind] = k
		t.bySegment[kindSegment(k.Kind)] = k
	}
	return t
})

// lookupKind resolves the kind a resource reports, by canonical name first
// and any alias second.
func lookupKind(kind string) (api.KindInfo, bool) {
	if k, ok := kindTable().byKind[kind]; ok {
		return k, true
	}
	return api.LookupKind(kind)
}

// parseKey splits a typed resource key into its kind and name. It reports
// false for keys outside Prefix, of unknown kinds, or without a name.
func parseKey(key string) (api.KindInfo, string, bool) {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return api.KindInfo{}, "", false
	}
	seg, name, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return api.KindInfo{}, "", false
	}
	k, ok := kindTable().bySegment[seg]
	return k, name, ok
}

// checkName refuses names the key layout cannot hold.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s has no metadata.name", kind)
	case strings.Contains(name, "/"):
		return fmt.Errorf("%s name %q contains '/', which the datastore cannot store", kind, name)
	}
	return nil
}

// target resolves the kind and key of a resource about to be written.
func target(r api.Resource) (api.KindInfo, string, error) {
	if r == nil {
		return api.KindInfo{}, "", fmt.Errorf("no resource given")
	}
	kind, ok := lookupKind(r.GetKind())
	if !ok {
		return api.KindInfo{}, "", fmt.Errorf("unknown kind %q", r.GetKind())
	}
	name := r.GetObjectMeta().Name
	if err := checkName(kind.Kind, name); err != nil {
		return api.KindInfo{}, "", err
	}
	return kind, ResourceKey(kind, name), nil
}

// parseRevision parses a resourceVersion.
func parseRevision(kind, name, rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s %q: resourceVersion %q is not a revision", kind, name, rv)
	}
	return n, nil
}

func formatRevision(rev int64) string { return strconv.FormatInt(rev, 10) }
