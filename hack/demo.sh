#!/usr/bin/env bash
# make demo: starts calyx-node on its embedded etcd, applies examples/ and
# the Calico v3 manifests in examples/calico-v3/, lists what was stored,
# shows calyxctl refusing bad input, and cleans up (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
PORT=${CALYX_DEMO_PORT:-22379}
work=$(mktemp -d /tmp/calyx-demo.XXXXXX)
node_pid=""

cleanup() {
	if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
		kill -TERM "$node_pid"
		wait "$node_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export CALYX_ETCD_ENDPOINTS="http://127.0.0.1:${PORT}"
ctl() { echo "\$ calyxctl $*"; "$BIN/calyxctl" "$@"; echo; }

echo "== starting calyx-node (embedded etcd on 127.0.0.1:${PORT}, data in $work)"
env -u CALYX_ETCD_ENDPOINTS "$BIN/calyx-node" --name demo-host-1 --ip 192.0.2.10/24 --data-dir "$work" \
	--etcd-listen-client-url "http://127.0.0.1:${PORT}" \
	--etcd-listen-peer-url "http://127.0.0.1:$((PORT + 1))" >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 100); do
	if "$BIN/calyxctl" get node demo-host-1 >/dev/null 2>&1; then break; fi
	kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log"; echo "calyx-node exited"; exit 1; }
	sleep 0.1
done
ctl get nodes -o wide

echo "== applying examples/"
ctl apply -f examples/
echo "== applying Calico v3 manifests (examples/calico-v3/)"
ctl apply -f examples/calico-v3/calico-manifests.yaml

for kind in ippools ipamconfiguration profiles gnp gns bgpconfigurations bgppeers nodeconfigurations hostendpoints; do
	ctl get "$kind" -o wide
done
ctl get ippool mesos-pool -o yaml
ctl get gns --selector 'role == "monitoring"'
ctl label gnp db-from-api tier=data

echo "== bad input is refused and nothing is written"
cat >"$work/bad.yaml" <<'YAML'
apiVersion: calyx.dev/v1
kind: IPPool
metadata:
  name: good-pool
spec:
  cidr: 10.70.0.0/16
---
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata:
  name: bad-policy
spec:
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: ICMP
    destination:
      ports: [80]
YAML
echo "\$ calyxctl apply -f bad.yaml"
"$BIN/calyxctl" apply -f "$work/bad.yaml" || true
echo "\$ calyxctl get ippool good-pool"
"$BIN/calyxctl" get ippool good-pool || true
echo
echo "== overlapping pool"
printf 'apiVersion: calyx.dev/v1\nkind: IPPool\nmetadata: {name: overlap}\nspec: {cidr: 10.65.128.0/17}\n' >"$work/overlap.yaml"
"$BIN/calyxctl" apply -f "$work/overlap.yaml" || true
echo
echo "== stopping calyx-node"
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""
tail -n 3 "$work/node.log"
echo "demo done"
