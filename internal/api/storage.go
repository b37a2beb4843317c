package api

import (
	"encoding/json"
	"fmt"
)

// MarshalStored encodes a resource the way the datastore keeps it: JSON in
// calyx.dev/v1 with TypeMeta set and no ResourceVersion (the revision is
// the datastore's, not part of the value).
func MarshalStored(r Resource) ([]byte, error) {
	c := r.DeepCopyResource()
	*c.GetTypeMeta() = TypeMeta{Kind: r.GetKind(), APIVersion: APIVersion}
	c.GetObjectMeta().ResourceVersion = ""
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %q: %w", r.GetKind(), r.GetObjectMeta().Name, err)
	}
	return b, nil
}

// UnmarshalStored decodes a stored value of the given kind.
func UnmarshalStored(kind KindInfo, data []byte) (Resource, error) {
	r := kind.New()
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("decoding stored %s: %w", kind.Kind, err)
	}
	*r.GetTypeMeta() = TypeMeta{Kind: kind.Kind, APIVersion: APIVersion}
	return r, nil
}
