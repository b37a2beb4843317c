// Package api defines Calyx's resources: the documents operators write and
// every calyx-node reads.
//
// The resources are Kubernetes-style (apiVersion, kind, metadata, spec) under
// apiVersion calyx.dev/v1, and use Project Calico's v3 field names and shapes
// on purpose: an operator who knows Calico manifests can read and write Calyx
// ones, and projectcalico.org/v3 documents of the same kinds are accepted and
// converted by the codec. The package owns defaults (SetDefaults), strict
// validation that reports the field path (Validate), and the YAML/JSON codec.
// It does no I/O: the datastore stores what this package encodes.
package api
