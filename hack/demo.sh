#!/usr/bin/env bash
# make demo: a three-host Calyx cluster in network namespaces on one machine.
#
#   cxd-lan            a router namespace: LAN 192.0.2.0/24 (bridge br0, h1
#                      and h2) and LAN 198.51.100.0/24 (bridge br1, h3)
#   cxd-h1..cxd-h3     three "hosts", each with eth0 on a LAN and a calyx-node;
#                      h1's calyx-node runs the embedded etcd (TLS with client
#                      certificates); h2 and h3 join it with copies of h1's
#                      ca.crt, client.crt and client.key, as real hosts would
#   cxd-c*             containers, attached by the real `calyx` CNI plugin
#                      called exactly the way the Mesos CNI isolator calls it
#
# It applies examples/, attaches labelled containers on two networks, shows
# their endpoints and prints a connectivity matrix. Everything lives in
# namespaces it creates; the root namespace is not touched. It cleans up
# after itself, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(pwd)/${BIN:-bin}
work=$(mktemp -d /tmp/calyx-demo.XXXXXX)
HOSTS=(h1 h2 h3)
declare -A HOST_IP=([h1]=192.0.2.11 [h2]=192.0.2.12 [h3]=198.51.100.13)
declare -A HOST_LAN=([h1]=br0 [h2]=br0 [h3]=br1)
declare -A LAN_GW=([br0]=192.0.2.1 [br1]=198.51.100.1)
ETCD="https://192.0.2.11:2379"
PKI="$work/h1/etcd-pki" # made by h1's calyx-node on first start
pids=()
containers=() # "name host network cid"

say() { printf '\n== %s\n' "$*"; }
inns() { local n=$1; shift; ip netns exec "cxd-$n" "$@"; }
# etcdenv HOST: the CALYX_ETCD_* settings that reach h1's etcd from HOST.
etcdenv() {
	local d="$PKI"
	[ "$1" = h1 ] || d="$work/$1/etcd-client"
	echo CALYX_ETCD_ENDPOINTS="$ETCD" CALYX_ETCD_CA_FILE="$d/ca.crt" CALYX_ETCD_CERT_FILE="$d/client.crt" CALYX_ETCD_KEY_FILE="$d/client.key"
}
ctl() { echo "\$ calyxctl $*"; inns h1 env -i PATH="$PATH" $(etcdenv h1) "$BIN/calyxctl" "$@"; }

# cni HOST COMMAND NAME NETWORK CID: run the calyx plugin as the Mesos
# isolator does: a bare environment, stdin the saved network config.
cni() {
	local host=$1 cmd=$2 name=$3 net=$4 cid=$5
	local env=(CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" CNI_IFNAME=eth0 CNI_PATH="$BIN" PATH="$PATH")
	[ "$cmd" = ADD ] && env+=(CNI_NETNS="/run/netns/cxd-$name")
	inns "$host" env -i "${env[@]}" "$BIN/calyx" <"$work/$name.conf"
}

cleanup() {
	set +e
	for c in "${containers[@]}"; do
		read -r name host net cid <<<"$c"
		cni "$host" DEL "$name" "$net" "$cid" >/dev/null 2>&1
	done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for n in $(ip netns list | awk '/^cxd-/{print $1}'); do ip netns del "$n"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "make demo needs root (it creates network namespaces)"; exit 1; }
for t in ip ping nft; do command -v $t >/dev/null || { echo "missing $t: apt-get install iproute2 iputils-ping nftables"; exit 1; }; done
for n in $(ip netns list | awk '/^cxd-/{print $1}'); do ip netns del "$n"; done

say "building three hosts on two LANs joined by a router (namespaces cxd-lan, cxd-h1..h3)"
ip netns add cxd-lan
# The router (in cxd-lan) is each host's default gateway, as on a real
# network; it knows no container routes.
for br in br0 br1; do
	ip -n cxd-lan link add "$br" type bridge
	ip -n cxd-lan link set "$br" up
	ip -n cxd-lan addr add "${LAN_GW[$br]}/24" dev "$br"
done
ip netns exec cxd-lan sysctl -qw net.ipv4.ip_forward=1
for h in "${HOSTS[@]}"; do
	ip netns add "cxd-$h"
	ip -n "cxd-$h" link set lo up
	ip -n "cxd-lan" link add "$h" type veth peer name eth0 netns "cxd-$h"
	ip -n cxd-lan link set "$h" master "${HOST_LAN[$h]}" up
	ip -n "cxd-$h" addr add "${HOST_IP[$h]}/24" dev eth0
	ip -n "cxd-$h" link set eth0 up
	ip -n "cxd-$h" route add default via "${LAN_GW[${HOST_LAN[$h]}]}"
	echo "host $h: eth0 ${HOST_IP[$h]}/24 on ${HOST_LAN[$h]}"
done

say "starting calyx-node on each host (h1 runs the embedded etcd at $ETCD)"
for h in "${HOSTS[@]}"; do
	mkdir -p "$work/$h"
	args=(--name "$h" --ip "${HOST_IP[$h]}/24" --data-dir "$work/$h" --socket "$work/$h/calyx.sock" --gc-grace 10m --docker=false)
	if [ "$h" = h1 ]; then
		args+=(--etcd-listen-client-url "$ETCD" --etcd-listen-peer-url "https://192.0.2.11:2380")
	else
		# Joining: copies of the first host's CA and client certificate.
		mkdir -m 0700 "$work/$h/etcd-client"
		cp "$PKI/ca.crt" "$PKI/client.crt" "$PKI/client.key" "$work/$h/etcd-client/"
		d="$work/$h/etcd-client"
		args+=(--etcd-endpoints "$ETCD" --etcd-ca-file "$d/ca.crt" --etcd-cert-file "$d/client.crt" --etcd-key-file "$d/client.key")
	fi
	# Started directly (not through a shell function) so that $! is
	# calyx-node itself: ip netns exec and env exec into it.
	ip netns exec "cxd-$h" env -i PATH="$PATH" "$BIN/calyx-node" "${args[@]}" >"$work/$h/node.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 200); do
		[ -S "$work/$h/calyx.sock" ] && inns "$h" env -i PATH="$PATH" $(etcdenv "$h") "$BIN/calyxctl" get node "$h" >/dev/null 2>&1 && break
		sleep 0.1
	done
	[ -S "$work/$h/calyx.sock" ] || { cat "$work/$h/node.log"; echo "calyx-node on $h did not start"; exit 1; }
done
ctl get nodes -o wide

say "applying examples/ (pools, policy, BGP and node settings)"
ctl apply -f examples/
ctl get ippools

say "attaching containers as the Mesos CNI isolator would (network_info labels)"
attach() { # name host network labels-json
	local name=$1 host=$2 net=$3 labels=$4 cid
	cid=$(cat /proc/sys/kernel/random/uuid)
	ip netns add "cxd-$name"
	ip -n "cxd-$name" link set lo up
	cat >"$work/$name.conf" <<JSON
{"cniVersion":"0.2.0","name":"$net","type":"calyx","agent_socket":"$work/$host/calyx.sock",
 "ipam":{"type":"calyx-ipam"},
 "args":{"org.apache.mesos":{"network_info":{"name":"$net","labels":{"labels":$labels}}}}}
JSON
	local out
	out=$(cni "$host" ADD "$name" "$net" "$cid")
	containers+=("$name $host $net $cid")
	local flat ip
	flat=$(tr -d ' \n' <<<"$out")
	ip=$(sed -n 's/.*"ip4":{"ip":"\([^"/]*\).*/\1/p' <<<"$flat")
	printf '%-6s on %s  network %-9s  result %s\n' "$name" "$host" "$net" "$flat"
	eval "IP_${name//-/_}=$ip"
}
attach web-1 h1 frontend '[{"key":"app","value":"web"},{"key":"tier","value":"front"}]'
attach web-2 h1 frontend '[{"key":"app","value":"web"},{"key":"tier","value":"front"}]'
attach db-1  h1 backend  '[{"key":"role","value":"db"},{"key":"calyx.dev/owner","value":"team a"}]'
attach web-3 h2 frontend '[{"key":"app","value":"web"}]'
attach api-1 h3 backend  '[{"key":"role","value":"api"},{"key":"env","value":"prod"}]'

ctl get workloadendpoints -o wide
ctl get profiles

names=(web-1 web-2 db-1 web-3 api-1)
matrix() { # ping from row to column
	printf '%-8s' ""; for d in "${names[@]}"; do printf '%-8s' "$d"; done; echo
	for s in "${names[@]}"; do
		printf '%-8s' "$s"
		for d in "${names[@]}"; do
			if [ "$s" = "$d" ]; then printf '%-8s' "."; continue; fi
			var="IP_${d//-/_}"
			if ip netns exec "cxd-$s" ping -c1 -W1 -q "${!var}" >/dev/null 2>&1; then printf '%-8s' "ok"; else printf '%-8s' "--"; fi
		done
		echo
	done
}

# Routes between hosts: VXLAN ones come from the datastore at once, native
# ones over the BGP mesh once its sessions are up (a second or two).
for h in "${HOSTS[@]}"; do
	for _ in $(seq 1 300); do
		[ "$(inns "$h" ip route show proto 80 | grep -c ' via ')" -ge $((${#HOSTS[@]} - 1)) ] && break
		sleep 0.1
	done
done

say "routing: with a policy allowing everything (order 0), every pair meets, across hosts too"
cat >"$work/allow-all.yaml" <<YAML
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: demo-allow-all}
spec: {order: 0, selector: all(), ingress: [{action: Allow}], egress: [{action: Allow}]}
YAML
ctl apply -f "$work/allow-all.yaml"
matrix
ctl delete globalnetworkpolicy demo-allow-all

say "connectivity with the policies of examples/ in force (ping from row to column)"
matrix
echo "web-1 and web-2 meet: the frontend profile lets members of the network talk."
echo "db-1 answers ping from the pool (policy db-from-api, rule 1), but the frontend"
echo "  profile admits only its own members, so db-1 cannot reach web-1 or web-2."
echo "across hosts the same rules hold: web-3 on h2 meets web-1 and web-2 on h1."

say "routes between hosts: the pool is CrossSubnet, so h1 and h2 (one LAN) route"
echo "   natively (routes learned over the BGP mesh) and h3 (the other LAN) is reached"
echo "   over VXLAN"
for h in "${HOSTS[@]}"; do
	echo "\$ ip route show proto 80 on $h   (routes to other hosts' blocks; blackhole: its own)"
	inns "$h" ip route show proto 80 | grep -v ' dev calyx' || true
done
for pair in "web-1 web-3" "web-1 api-1" "api-1 db-1"; do
	read -r s d <<<"$pair"
	var="IP_${d//-/_}"
	host=$(awk -v n="$s" '$1==n{print $2}' <<<"$(printf '%s\n' "${containers[@]}")")
	printf '%-6s -> %-6s path on %s: %s\n' "$s" "$d" "$host" "$(inns "$host" ip route get "${!var}" | head -1)"
done
echo "\$ calyxctl node status   (on h1: its BGP sessions, VXLAN peers, routes and endpoints)"
inns h1 "$BIN/calyxctl" node status --socket "$work/h1/calyx.sock"

say "why is db-1 -> web-1 denied? (calyxctl policy trace)"
ctl policy trace --from "$IP_db_1" --to "$IP_web_1"
ctl policy trace --from "$IP_web_1" --to "$IP_db_1" --port 5432/tcp

say "applying a policy live: the frontend may no longer ping databases"
cat >"$work/no-web-to-db.yaml" <<YAML
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: no-web-to-db}
spec:
  order: 10
  selector: role == "db"
  ingress:
  - action: Deny
    source: {selector: app == "web"}
YAML
cat "$work/no-web-to-db.yaml"
ctl apply -f "$work/no-web-to-db.yaml"
matrix
ctl policy trace --from "$IP_web_1" --to "$IP_db_1"

say "the kernel's side: Calyx's own nftables table on h1"
echo "\$ nft list table inet calyx | grep -E '^\s*(chain|set|map) '   (the objects)"
inns h1 nft list table inet calyx | grep -E '^\s*(chain|set|map) ' | sed 's/ {$//'
echo "\$ nft list chain inet calyx policy-in-no-web-to-db   (the policy applied live)"
inns h1 nft list chain inet calyx policy-in-no-web-to-db

say "detaching (Mesos DEL: saved stdin, no CNI_NETNS) and stopping"
for c in "${containers[@]}"; do
	read -r name host net cid <<<"$c"
	cni "$host" DEL "$name" "$net" "$cid"
	echo "$name detached"
done
containers=()
ctl get workloadendpoints
echo "demo done"
