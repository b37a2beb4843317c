package api

// Rule actions.
const (
	ActionAllow = "Allow"
	ActionDeny  = "Deny"
	ActionLog   = "Log"
	ActionPass  = "Pass"
)

// Policy types.
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// Profile is a set of rules and labels that endpoints reference by name.
// The CNI network name is a workload's profile.
type Profile struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     ProfileSpec `json:"spec"`
}

// ProfileSpec holds the profile's rules and inherited labels.
type ProfileSpec struct {
	Ingress       []Rule            `json:"ingress,omitempty"`
	Egress        []Rule            `json:"egress,omitempty"`
	LabelsToApply map[string]string `json:"labelsToApply,omitempty"`
}

// GlobalNetworkPolicy is an ordered policy applied to the endpoints its
// selector matches.
type GlobalNetworkPolicy struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta              `json:"metadata"`
	Spec     GlobalNetworkPolicySpec `json:"spec"`
}

// GlobalNetworkPolicySpec is a policy's rules and scope.
type GlobalNetworkPolicySpec struct {
	Order                  *float64 `json:"order,omitempty"`    // nil sorts after every number
	Selector               string   `json:"selector,omitempty"` // empty means all()
	Types                  []string `json:"types,omitempty"`    // inferred by SetDefaults when empty
	Ingress                []Rule   `json:"ingress,omitempty"`
	Egress                 []Rule   `json:"egress,omitempty"`
	DoNotTrack             bool     `json:"doNotTrack,omitempty"`
	PreDNAT                bool     `json:"preDNAT,omitempty"`
	ApplyOnForward         bool     `json:"applyOnForward,omitempty"`
	NamespaceSelector      string   `json:"namespaceSelector,omitempty"`
	ServiceAccountSelector string   `json:"serviceAccountSelector,omitempty"`
}

// Rule is one policy rule. A packet matches when every given field matches.
type Rule struct {
	Action      string        `json:"action"`
	IPVersion   *int          `json:"ipVersion,omitempty"`
	Protocol    *Protocol     `json:"protocol,omitempty"`
	NotProtocol *Protocol     `json:"notProtocol,omitempty"`
	ICMP        *ICMPFields   `json:"icmp,omitempty"`
	NotICMP     *ICMPFields   `json:"notICMP,omitempty"`
	Source      EntityRule    `json:"source,omitzero"`
	Destination EntityRule    `json:"destination,omitzero"`
	HTTP        *HTTPMatch    `json:"http,omitempty"`
	Metadata    *RuleMetadata `json:"metadata,omitempty"`
}

// ICMPFields matches an ICMP type and, optionally, code.
type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

// EntityRule matches the source or destination of a packet.
type EntityRule struct {
	Nets              []string         `json:"nets,omitempty"`
	NotNets           []string         `json:"notNets,omitempty"`
	Selector          string           `json:"selector,omitempty"`
	NotSelector       string           `json:"notSelector,omitempty"`
	NamespaceSelector string           `json:"namespaceSelector,omitempty"`
	Ports             []Port           `json:"ports,omitempty"`
	NotPorts          []Port           `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccounts `json:"serviceAccounts,omitempty"`
}

// ServiceAccounts matches by service account (accepted for Calico
// compatibility; Mesos has no service accounts).
type ServiceAccounts struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

// HTTPMatch is Calico's application-layer match (accepted, not enforced in
// the kernel dataplane).
type HTTPMatch struct {
	Methods []string            `json:"methods,omitempty"`
	Paths   []map[string]string `json:"paths,omitempty"`
}

// RuleMetadata carries annotations on a rule.
type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

// GlobalNetworkSet is a labelled set of networks that policy selectors can
// match like endpoints.
type GlobalNetworkSet struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta           `json:"metadata"`
	Spec     GlobalNetworkSetSpec `json:"spec"`
}

// GlobalNetworkSetSpec lists the networks.
type GlobalNetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}
