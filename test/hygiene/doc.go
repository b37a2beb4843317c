// Package hygiene holds tests that keep the house rules machine-checked:
// every package has a doc comment, and only the packages allowed to import
// a dependency (the etcd client, GoBGP, the dataplane) do so.
package hygiene
