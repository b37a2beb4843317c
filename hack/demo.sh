#!/usr/bin/env bash
# make demo: a three-host Calyx cluster in network namespaces on one machine.
#
#   cxd-lan            a router namespace: LAN 192.0.2.0/24 (bridge br0, h1
#                      and h2) and LAN 198.51.100.0/24 (bridge br1, h3)
#   cxd-h1..cxd-h3     three "hosts", each with eth0 on a LAN and a calyx-node;
#                      h1's calyx-node runs the embedded etcd (TLS with client
#                      certificates); h2 and h3 join it with copies of h1's
#                      ca.crt, client.crt and client.key, as real hosts would
#   cxd-web-1, ...     containers, attached by the real `calyx` CNI plugin
#                      called exactly the way the Mesos CNI isolator calls it
#   dockerd on h2      a private dockerd (Debian's docker.io) in h2's network
#                      namespace and a mount namespace of its own; h2's
#                      calyx-node runs there too and serves the Docker
#                      plugins calyx and calyx-ipam; a Docker container
#                      joins the Mesos containers' network "frontend"
#
# It applies examples/, attaches labelled containers on two networks, shows
# their endpoints and prints a connectivity matrix. Everything lives in
# namespaces it creates; the root namespace is not touched (nor the
# machine's Docker: its /run/docker, routes, firewall and sysctls). It
# cleans up after itself, also when interrupted.
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
declare -A IP # container name -> its IPv4 address

# The Docker host. Its dockerd runs as test/dockerd runs one: in the host's
# network namespace, entered with nsenter --net (not ip netns exec, which
# remounts /sys and hides the cgroup mounts dockerd needs), and in a mount
# namespace of its own (unshare --mount --propagation private) with a tmpfs
# over /run, so that it sees no system containerd, and a directory of the
# demo's bind-mounted over /run/docker, where dockerd looks for plugins. A
# holder process keeps that namespace; calyx-node and dockerd enter both
# of its namespaces (nsenter --target HOLDER --mount --net), so calyx-node
# serves /run/docker/plugins/calyx{,-ipam}.sock where dockerd looks, and
# sees the containers' sandboxes. Its own socket, data, exec root, pid file,
# configuration and cgroup parent; no bridge, no iptables, no sysctls.
DOCKER_NODE=h2
DROOT=$work/docker                        # short: socket paths live below it
DOCKER_CGROUP=/calyx-demo-${work##*.}     # the containers' cgroup parent
DOCKER_IMAGE=calyx-demo/busybox:latest    # built from Debian's busybox-static
holder=""
dockerd_pid=""
dockers=() # Docker containers: "name network"

say() { printf '\n== %s\n' "$*"; }
inns() { local n=$1; shift; ip netns exec "cxd-$n" "$@"; }
# etcdenv HOST: the CALYX_ETCD_* settings that reach h1's etcd from HOST,
# as words for env (unquoted on purpose: no paths here hold spaces).
etcdenv() {
	local d="$PKI"
	[ "$1" = h1 ] || d="$work/$1/etcd-client"
	echo CALYX_ETCD_ENDPOINTS="$ETCD" CALYX_ETCD_CA_FILE="$d/ca.crt" CALYX_ETCD_CERT_FILE="$d/client.crt" CALYX_ETCD_KEY_FILE="$d/client.key"
}
# shellcheck disable=SC2046 # etcdenv's words
ctl() { echo "\$ calyxctl $*"; inns h1 env -i PATH="$PATH" $(etcdenv h1) "$BIN/calyxctl" "$@"; }
# dk ARGS: the docker CLI, talking to the demo's dockerd and no other.
dk() { DOCKER_HOST="unix://$DROOT/docker.sock" DOCKER_CONFIG="$DROOT/cli" docker "$@"; }
dks() { echo "\$ docker $*"; dk "$@"; }
# indocker CMD ARGS: run CMD in the Docker host's network and mount
# namespaces (the holder's), from /.
indocker() { (cd / && exec nsenter --target "$holder" --mount --net -- "$@"); }

# cni HOST COMMAND NAME NETWORK CID: run the calyx plugin as the Mesos
# isolator does: a bare environment, stdin the saved network config.
cni() {
	local host=$1 cmd=$2 name=$3 net=$4 cid=$5
	local env=(CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" CNI_IFNAME=eth0 CNI_PATH="$BIN" PATH="$PATH")
	[ "$cmd" = ADD ] && env+=(CNI_NETNS="/run/netns/cxd-$name")
	inns "$host" env -i "${env[@]}" "$BIN/calyx" <"$work/$name.conf"
}

# cgroup_dirs: the directories of the Docker containers' cgroup parent and
# below, in every cgroup hierarchy, children first.
cgroup_dirs() {
	local mp
	awk '$0 ~ / - cgroup2? / {print $5}' /proc/self/mountinfo | while read -r mp; do
		[ -d "$mp$DOCKER_CGROUP" ] && find "$mp$DOCKER_CGROUP" -depth -type d
	done
}

# stop_docker_containers removes the Docker containers and networks while
# calyx-node still serves the plugins, so that their endpoints and
# addresses are released, then stops dockerd (SIGKILL after 30 s).
stop_docker_containers() {
	local c name net
	[ -n "$dockerd_pid" ] || return 0
	for c in "${dockers[@]}"; do
		read -r name net <<<"$c"
		dk rm -f "$name" >/dev/null 2>&1
		dk network rm "$net" >/dev/null 2>&1
	done
	dockers=()
	kill -TERM "$dockerd_pid" 2>/dev/null
	for _ in $(seq 1 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$dockerd_pid" 2>/dev/null
	wait "$dockerd_pid" 2>/dev/null
	dockerd_pid=""
}
# stop_docker_namespace kills whatever is left in the Docker host's mount
# namespace or the containers' cgroups (containerd, shims, containers; and
# h2's calyx-node, which cleanup has stopped before), ends the holder, with
# which the namespace and its mounts go, and removes the cgroups.
stop_docker_namespace() {
	local mnt p pid left d
	[ -n "$holder" ] || return 0
	mnt=$(readlink "/proc/$holder/ns/mnt")
	for _ in $(seq 1 50); do
		left=()
		for p in /proc/[0-9]*; do
			pid=${p#/proc/}
			[ "$pid" != "$holder" ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mnt" ] && left+=("$pid")
		done
		while read -r pid; do [ -n "$pid" ] && left+=("$pid"); done < <(cgroup_dirs | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done)
		[ ${#left[@]} -eq 0 ] && break
		kill -KILL "${left[@]}" 2>/dev/null
		sleep 0.1
	done
	kill -KILL "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	holder=""
	for _ in $(seq 1 50); do
		cgroup_dirs | xargs -r rmdir 2>/dev/null
		[ -z "$(cgroup_dirs)" ] && break
		sleep 0.1
	done
}

cleanup() {
	set +e
	stop_docker_containers
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
	stop_docker_namespace
	for n in $(ip netns list | awk '/^cxd-/{print $1}'); do ip netns del "$n"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "make demo needs root (it creates network namespaces)"; exit 1; }
for t in ip ping nft; do command -v $t >/dev/null || { echo "missing $t: apt-get install iproute2 iputils-ping nftables"; exit 1; }; done
for t in dockerd docker nsenter unshare; do command -v $t >/dev/null || { echo "missing $t: run make deps (Debian's docker.io, util-linux)"; exit 1; }; done
[ -x /bin/busybox ] || { echo "missing /bin/busybox: run make deps (Debian's busybox-static)"; exit 1; }
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

say "Docker host $DOCKER_NODE: a mount namespace of its own, with a tmpfs over /run and $DROOT/run-docker over /run/docker"
mkdir -p "$DROOT/run-docker/plugins" "$DROOT/data" "$DROOT/exec" "$DROOT/cli" "$DROOT/image"
# An empty configuration file of its own (dockerd refuses a flag that
# repeats a setting of the machine's /etc/docker/daemon.json). Docker 20.10
# to 22 keep the daemon's identity key in /etc/docker/key.json unless told
# otherwise; later versions have no such file, and refuse the setting.
if [ "$(dockerd --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')" -lt 23 ] 2>/dev/null; then
	echo "{\"deprecated-key-path\": \"$DROOT/key.json\"}" >"$DROOT/daemon.json"
else
	echo "{}" >"$DROOT/daemon.json"
fi
# nsenter and unshare exec (no fork): $! is the holder's shell, then sleep.
# shellcheck disable=SC2016 # $1 is the inner shell's
nsenter --net="/run/netns/cxd-$DOCKER_NODE" -- unshare --mount --propagation private -- sh -c '
	set -e
	mount -t tmpfs -o mode=0755 calyx-demo-run /run
	mkdir /run/docker
	mount --bind "$1/run-docker" /run/docker
	touch "$1/holder-ready"
	exec sleep infinity' calyx-demo-docker-ns "$DROOT" </dev/null >"$DROOT/holder.log" 2>&1 &
holder=$!
for _ in $(seq 1 100); do [ -e "$DROOT/holder-ready" ] && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.05; done
[ -e "$DROOT/holder-ready" ] || { cat "$DROOT/holder.log"; echo "setting up the Docker host's mount namespace failed"; exit 1; }
echo "holder pid $holder: nsenter --target $holder --mount --net enters the Docker host"

say "starting calyx-node on each host (h1 runs the embedded etcd at $ETCD; $DOCKER_NODE's serves the Docker plugins)"
for h in "${HOSTS[@]}"; do
	mkdir -p "$work/$h"
	args=(--name "$h" --ip "${HOST_IP[$h]}/24" --data-dir "$work/$h" --socket "$work/$h/calyx.sock" --gc-grace 10m)
	if [ "$h" = "$DOCKER_NODE" ]; then
		# The default --docker-plugin-dir, /run/docker/plugins: the
		# holder's bind mount, where this host's dockerd looks.
		args+=(--docker-host "unix://$DROOT/docker.sock")
	else
		args+=(--docker=false)
	fi
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
	# calyx-node itself: ip netns exec, nsenter and env exec into it. The
	# Docker host's calyx-node runs in dockerd's mount namespace, and is
	# started before dockerd, as systemd would (Before=docker.service).
	if [ "$h" = "$DOCKER_NODE" ]; then
		(cd / && exec nsenter --target "$holder" --mount --net -- env -i PATH="$PATH" "$BIN/calyx-node" "${args[@]}") >"$work/$h/node.log" 2>&1 &
	else
		ip netns exec "cxd-$h" env -i PATH="$PATH" "$BIN/calyx-node" "${args[@]}" >"$work/$h/node.log" 2>&1 &
	fi
	pids+=($!)
	for _ in $(seq 1 200); do
		# shellcheck disable=SC2046 # etcdenv's words
		[ -S "$work/$h/calyx.sock" ] && inns "$h" env -i PATH="$PATH" $(etcdenv "$h") "$BIN/calyxctl" get node "$h" >/dev/null 2>&1 && break
		sleep 0.1
	done
	[ -S "$work/$h/calyx.sock" ] || { cat "$work/$h/node.log"; echo "calyx-node on $h did not start"; exit 1; }
done
ctl get nodes -o wide
echo "\$ ls /run/docker/plugins   (on $DOCKER_NODE, inside its mount namespace)"
indocker ls /run/docker/plugins

say "starting a private dockerd on $DOCKER_NODE, after its calyx-node ($DROOT)"
dargs=(-H "unix://$DROOT/docker.sock" --config-file "$DROOT/daemon.json"
	--data-root "$DROOT/data" --exec-root "$DROOT/exec" --pidfile "$DROOT/docker.pid"
	--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --userland-proxy=false
	--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$DOCKER_CGROUP" --shutdown-timeout=2)
(cd / && exec nsenter --target "$holder" --mount --net -- dockerd "${dargs[@]}") >"$DROOT/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 600); do
	dk version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
	kill -0 "$dockerd_pid" 2>/dev/null || break
	sleep 0.1
done
dk version --format '{{.Server.Version}}' >/dev/null 2>&1 || { tail -30 "$DROOT/dockerd.log"; echo "dockerd did not start"; exit 1; }
echo "dockerd $(dk version --format '{{.Server.Version}}') on $DOCKER_NODE: -H unix://$DROOT/docker.sock --bridge=none --iptables=false --cgroup-parent $DOCKER_CGROUP"
# The image: Debian's static busybox and its applets, imported, so no
# registry is needed.
img="$DROOT/image"
mkdir -p "$img/bin" "$img/etc" "$img/root" "$img/tmp"
chmod 1777 "$img/tmp"
cp /bin/busybox "$img/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$img/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$img/etc/passwd"
echo "root:x:0:" >"$img/etc/group"
tar -C "$img" -c . | dk import --change 'CMD ["/bin/sh"]' - "$DOCKER_IMAGE" >/dev/null
echo "image $DOCKER_IMAGE imported from /bin/busybox"

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
	IP[$name]=$ip
}
attach web-1 h1 frontend '[{"key":"app","value":"web"},{"key":"tier","value":"front"}]'
attach web-2 h1 frontend '[{"key":"app","value":"web"},{"key":"tier","value":"front"}]'
attach db-1  h1 backend  '[{"key":"role","value":"db"},{"key":"calyx.dev/owner","value":"team a"}]'
attach web-3 h2 frontend '[{"key":"app","value":"web"}]'
attach api-1 h3 backend  '[{"key":"role","value":"api"},{"key":"env","value":"prod"}]'

say "a Docker container on $DOCKER_NODE joins the network frontend (Docker's libnetwork plugins calyx and calyx-ipam)"
echo "The network's name is the cluster-wide key: the Docker network frontend is the"
echo "  CNI network frontend, with the same profile; --subnet names the pool default-ipv4."
echo "\$ docker network create -d calyx --ipam-driver calyx-ipam --subnet 10.65.0.0/16 frontend"
dk network create -d calyx --ipam-driver calyx-ipam --subnet 10.65.0.0/16 frontend | cut -c1-12
dockers+=("dk-web frontend")
dks network ls --filter driver=calyx
run=(run -d --name dk-web --network frontend --label calyx.label/app=web --label calyx.label/tier=front "$DOCKER_IMAGE" sleep 3600)
echo "\$ docker ${run[*]}"
dk "${run[@]}" | cut -c1-12
IP[dk-web]=$(dk inspect -f '{{.NetworkSettings.Networks.frontend.IPAddress}}' dk-web)
echo "\$ docker inspect -f '{{.NetworkSettings.Networks.frontend.IPAddress}}' dk-web"
echo "${IP[dk-web]}"
echo "\$ docker exec dk-web sh -c 'ip -4 addr show eth0; ip route; ip neigh'"
echo "   (a /32; everything via 169.254.1.1, a permanent entry for the host's veth)"
dk exec dk-web sh -c 'ip -4 addr show eth0; ip route; ip neigh'

say "every endpoint, Mesos and Docker alike"
ctl get workloadendpoints -o wide
ctl get profiles

names=(web-1 web-2 db-1 web-3 api-1 dk-web)
# pingfrom NAME IP: one ping from a container, Docker (docker exec) or Mesos
# (its network namespace).
pingfrom() {
	case "$1" in
	dk-*) dk exec "$1" ping -c1 -W1 -q "$2" ;;
	*) ip netns exec "cxd-$1" ping -c1 -W1 -q "$2" ;;
	esac
}
matrix() { # ping from row to column
	printf '%-8s' ""; for d in "${names[@]}"; do printf '%-8s' "$d"; done; echo
	for s in "${names[@]}"; do
		printf '%-8s' "$s"
		for d in "${names[@]}"; do
			if [ "$s" = "$d" ]; then printf '%-8s' "."; continue; fi
			if pingfrom "$s" "${IP[$d]}" >/dev/null 2>&1; then printf '%-8s' "ok"; else printf '%-8s' "--"; fi
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
echo "dk-web, a Docker container on h2 with label calyx.label/app=web, is a member of"
echo "  frontend like web-1..3: it meets them, pings db-1, and db-1 and api-1 cannot reach it."

say "routes between hosts: the pool is CrossSubnet, so h1 and h2 (one LAN) route"
echo "   natively (routes learned over the BGP mesh) and h3 (the other LAN) is reached"
echo "   over VXLAN"
for h in "${HOSTS[@]}"; do
	echo "\$ ip route show proto 80 on $h   (routes to other hosts' blocks; blackhole: its own)"
	inns "$h" ip route show proto 80 | grep -v ' dev calyx' || true
done
for pair in "web-1 web-3" "web-1 api-1" "api-1 db-1"; do
	read -r s d <<<"$pair"
	host=$(awk -v n="$s" '$1==n{print $2}' <<<"$(printf '%s\n' "${containers[@]}")")
	printf '%-6s -> %-6s path on %s: %s\n' "$s" "$d" "$host" "$(inns "$host" ip route get "${IP[$d]}" | head -1)"
done
echo "\$ calyxctl node status   (on h1: its BGP sessions, VXLAN peers, routes and endpoints)"
inns h1 "$BIN/calyxctl" node status --socket "$work/h1/calyx.sock"

say "why is db-1 -> web-1 denied? (calyxctl policy trace)"
ctl policy trace --from "${IP[db-1]}" --to "${IP[web-1]}"
ctl policy trace --from "${IP[web-1]}" --to "${IP[db-1]}" --port 5432/tcp

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
ctl policy trace --from "${IP[web-1]}" --to "${IP[db-1]}"
echo "dk-web, app=web by its Docker label calyx.label/app, is refused as web-1..3 are:"
ctl policy trace --from "${IP[dk-web]}" --to "${IP[db-1]}"

say "the kernel's side: Calyx's own nftables table on h1"
echo "\$ nft list table inet calyx | grep -E '^\s*(chain|set|map) '   (the objects)"
inns h1 nft list table inet calyx | grep -E '^\s*(chain|set|map) ' | sed 's/ {$//'
echo "\$ nft list chain inet calyx policy-in-no-web-to-db   (the policy applied live)"
inns h1 nft list chain inet calyx policy-in-no-web-to-db

say "detaching (Mesos DEL: saved stdin, no CNI_NETNS; docker rm) and stopping"
for c in "${containers[@]}"; do
	read -r name host net cid <<<"$c"
	cni "$host" DEL "$name" "$net" "$cid"
	echo "$name detached"
done
containers=()
dks rm -f dk-web
dks network rm frontend
dockers=()
ctl get workloadendpoints
ctl ipam check
echo "demo done"
