// Package cni tests the calyx and calyx-ipam plugins the way real CNI
// clients run them: cnitool and libcni, with .conf and .conflist files in
// every spec version, Debian's bridge plugin delegating to calyx-ipam, and
// a real calyx-node serving the local API in a network namespace that
// stands for the host. Containers are namespaces the tests create; packets
// never leave them and the host namespace. The tests need root.
package cni
