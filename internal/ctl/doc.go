// Package ctl implements calyxctl, the operator's command-line tool.
//
// calyxctl talks to etcd directly through internal/datastore: an operator
// can read and change the cluster's resources even when no calyx-node is
// up. Every command that writes decodes and validates all of its input
// first and then writes it in one datastore transaction, so a bad document
// in a file leaves the datastore exactly as it was. The package holds the
// command tree (spf13/cobra), settings resolution and output formatting;
// cmd/calyxctl only wires it to the process.
package ctl
