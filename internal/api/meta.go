package api

import (
	"sort"
	"strings"
)

// API versions the codec understands. Resources are always stored and
// printed as APIVersion; CalicoAPIVersion documents are converted on decode.
const (
	Group            = "calyx.dev"
	APIVersion       = "calyx.dev/v1"
	CalicoAPIVersion = "projectcalico.org/v3"
)

// Kind names, as written in the kind field of a document.
const (
	KindIPPool              = "IPPool"
	KindIPAMConfiguration   = "IPAMConfiguration"
	KindNode                = "Node"
	KindProfile             = "Profile"
	KindGlobalNetworkPolicy = "GlobalNetworkPolicy"
	KindGlobalNetworkSet    = "GlobalNetworkSet"
	KindWorkloadEndpoint    = "WorkloadEndpoint"
	KindHostEndpoint        = "HostEndpoint"
	KindBGPPeer             = "BGPPeer"
	KindBGPConfiguration    = "BGPConfiguration"
	KindNodeConfiguration   = "NodeConfiguration"

	// KindFelixConfiguration is Calico's name for NodeConfiguration; the
	// codec reads it as NodeConfiguration.
	KindFelixConfiguration = "FelixConfiguration"
	// KindList wraps several resources in one document (items).
	KindList = "List"
)

// TypeMeta is the apiVersion and kind of a document.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// ObjectMeta is the metadata every resource carries. ResourceVersion is the
// datastore's revision of the stored object: an update carrying a stale
// ResourceVersion is refused rather than applied over a newer write.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	UID               string            `json:"uid,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// Resource is implemented by every kind (as a pointer to its struct).
type Resource interface {
	// GetKind returns the kind, e.g. "IPPool", whatever TypeMeta says.
	GetKind() string
	// GetTypeMeta returns the document's type metadata for editing.
	GetTypeMeta() *TypeMeta
	// GetObjectMeta returns the resource's metadata for reading or editing.
	GetObjectMeta() *ObjectMeta
	// SetDefaults fills in defaults the way Calico applies them. It is
	// idempotent.
	SetDefaults()
	// Validate checks the resource on its own (not against other stored
	// resources) and returns a *ValidationError naming every bad field.
	Validate() error
	// DeepCopyResource returns an independent copy.
	DeepCopyResource() Resource
}

// KindInfo describes one kind: its canonical name and the names calyxctl
// accepts for it.
type KindInfo struct {
	Kind    string
	Plural  string   // lower-case plural, e.g. "ippools"
	Aliases []string // lower-case singular, plural and short names
	// Singleton kinds hold one well-known object ("default") or one per
	// node ("node.<name>"), like Calico's configuration kinds.
	Singleton bool
	newFunc   func() Resource
}

// New returns a new, empty resource of this kind with its TypeMeta set.
func (k KindInfo) New() Resource {
	r := k.newFunc()
	*r.GetTypeMeta() = TypeMeta{Kind: k.Kind, APIVersion: APIVersion}
	return r
}

// kinds is the immutable table of every kind Calyx stores.
var kinds = []KindInfo{
	{Kind: KindIPPool, Plural: "ippools", Aliases: []string{"ippool", "ippools", "pool", "pools", "ipp"},
		newFunc: func() Resource { return &IPPool{} }},
	{Kind: KindIPAMConfiguration, Plural: "ipamconfigurations", Aliases: []string{"ipamconfiguration", "ipamconfigurations", "ipamconfig", "ipamconfigs", "ipamc"},
		Singleton: true, newFunc: func() Resource { return &IPAMConfiguration{} }},
	{Kind: KindNode, Plural: "nodes", Aliases: []string{"node", "nodes", "no"},
		newFunc: func() Resource { return &Node{} }},
	{Kind: KindProfile, Plural: "profiles", Aliases: []string{"profile", "profiles", "pro", "pros"},
		newFunc: func() Resource { return &Profile{} }},
	{Kind: KindGlobalNetworkPolicy, Plural: "globalnetworkpolicies", Aliases: []string{"globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps", "policy", "policies"},
		newFunc: func() Resource { return &GlobalNetworkPolicy{} }},
	{Kind: KindGlobalNetworkSet, Plural: "globalnetworksets", Aliases: []string{"globalnetworkset", "globalnetworksets", "gns", "networkset", "networksets"},
		newFunc: func() Resource { return &GlobalNetworkSet{} }},
	{Kind: KindWorkloadEndpoint, Plural: "workloadendpoints", Aliases: []string{"workloadendpoint", "workloadendpoints", "wep", "weps"},
		newFunc: func() Resource { return &WorkloadEndpoint{} }},
	{Kind: KindHostEndpoint, Plural: "hostendpoints", Aliases: []string{"hostendpoint", "hostendpoints", "hep", "heps"},
		newFunc: func() Resource { return &HostEndpoint{} }},
	{Kind: KindBGPPeer, Plural: "bgppeers", Aliases: []string{"bgppeer", "bgppeers", "peer", "peers", "bgpp"},
		newFunc: func() Resource { return &BGPPeer{} }},
	{Kind: KindBGPConfiguration, Plural: "bgpconfigurations", Aliases: []string{"bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs", "bgpc"},
		Singleton: true, newFunc: func() Resource { return &BGPConfiguration{} }},
	{Kind: KindNodeConfiguration, Plural: "nodeconfigurations", Aliases: []string{"nodeconfiguration", "nodeconfigurations", "nodeconfig", "nodeconfigs", "felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"},
		Singleton: true, newFunc: func() Resource { return &NodeConfiguration{} }},
}

// Kinds returns every kind, in a stable order.
func Kinds() []KindInfo {
	out := make([]KindInfo, len(kinds))
	copy(out, kinds)
	return out
}

// LookupKind resolves a kind by its name, plural or short alias,
// case-insensitively ("IPPool", "ippools", "pool", "gnp", "wep", ...).
func LookupKind(name string) (KindInfo, bool) {
	l := strings.ToLower(strings.TrimSpace(name))
	for _, k := range kinds {
		if strings.ToLower(k.Kind) == l {
			return k, true
		}
		for _, a := range k.Aliases {
			if a == l {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// KindNames lists the canonical kind names, sorted, for error messages.
func KindNames() []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k.Kind)
	}
	sort.Strings(out)
	return out
}

// NewResource returns an empty resource of the named kind (any alias).
func NewResource(kind string) (Resource, bool) {
	k, ok := LookupKind(kind)
	if !ok {
		return nil, false
	}
	return k.New(), true
}
