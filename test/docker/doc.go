// Package docker tests Calyx's Docker plugin against a real dockerd
// (Debian's docker.io) in test network namespaces: calyx-node serves the
// calyx and calyx-ipam plugins inside dockerd's mount namespace, and the
// tests create networks and run containers with the docker CLI as a user
// or the Mesos Docker containerizer would.
package docker
