#!/usr/bin/env bash
# Installs what Calyx's tests, lint and demo need on a Debian 12 machine,
# and nothing that is already there: Debian packages with apt-get, cnitool
# and golangci-lint with `go install`. `make test` and `make demo` run it
# first; it needs root only when something is missing.
set -euo pipefail

# iproute2 and iputils-ping: the kernel tests and the demo build hosts in
# network namespaces and ping across them. containernetworking-plugins:
# Debian's reference CNI plugins (bridge, host-local, loopback), run beside
# Calyx's in the tests and benchmarks. etcd-server: the etcd binary, run as
# a 3-member cluster by the datastore-outage tests (losing its leader, its
# quorum) and as calyx-node's external etcd by the footprint benchmark
# (bench/footprint); calyx-node's own etcd runs in-process. nftables: the nft
# command, with which the tests and the demo read Calyx's table (calyx-node
# itself programs it over netlink). iptables, ipset, nftables and iperf3:
# the peers of the policy benchmark (bench/policy): Felix's layout loaded
# with iptables-restore and ipset restore, the same ruleset with `nft -f`,
# and the packet rate through a host. bird2: a real BGP peer for
# internal/bgp's interop test (and the BGP benchmark); its package would
# start bird as a service where systemd runs, so the service is stopped
# and disabled below: the tests run bird themselves in a namespace.
# docker.io and busybox-static: the Docker plugin's tests run a private
# dockerd in a namespace (test/dockerd) with an image built from the static
# busybox; docker.io's package (and containerd's, which it pulls in) would
# start the daemons as services where systemd runs, so they too are
# stopped and disabled below: a system containerd would also be picked up
# by every dockerd that can see /run/containerd.
pkgs=(git gcc libc6-dev ca-certificates iproute2 iputils-ping containernetworking-plugins etcd-server
	iptables ipset nftables iperf3 bird2 docker.io busybox-static)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		systemctl disable --now bird.service >/dev/null 2>&1 || true
	fi
	if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true
	fi
fi

# cnitool, the CNI project's own client, drives the plugins in the tests.
if ! command -v cnitool >/dev/null && [ ! -x "$(go env GOPATH)/bin/cnitool" ]; then
	echo "installing cnitool"
	if [ "$(id -u)" = 0 ]; then export GOBIN=/usr/local/bin; fi
	go install github.com/containernetworking/cni/cnitool@v1.3.0
fi

# golangci-lint runs the linters in .golangci.yml for `make lint`. Pinned:
# a newer release may add checks to enabled linters.
golangci_lint_version=v2.15.0
if ! command -v golangci-lint >/dev/null && [ ! -x "$(go env GOPATH)/bin/golangci-lint" ]; then
	echo "installing golangci-lint $golangci_lint_version"
	if [ "$(id -u)" = 0 ]; then export GOBIN=/usr/local/bin; fi
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$golangci_lint_version
fi
