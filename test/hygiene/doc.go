// Package hygiene holds tests that keep the house rules machine-checked:
// every package has a doc comment, only the packages allowed to import a
// dependency (the etcd client, GoBGP, the dataplane, the agent) do so, and
// netlink dumps go through internal/nlsafe.
package hygiene
