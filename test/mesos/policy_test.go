package mesos

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/calyx-net/calyx/internal/testnet"
)

// A task: its namespace, container ID and address.
type task struct {
	name string
	ns   ns.NetNS
	cid  string
	ip   string
	v6   string // "" when the network assigns no IPv6 address
}

// launch attaches a task with labels (key=value strings) to network calyx,
// as the Mesos CNI isolator does, optionally with port mappings.
func (a *agent) launch(t *testing.T, name string, labels []string, pm ...PortMapping) *task {
	t.Helper()
	tk := &task{name: name, ns: testnet.NewNS(t), cid: uuid()}
	info := NetworkInfo{Name: "calyx", PortMappings: pm}
	if len(labels) > 0 {
		info.Labels = &Labels{}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			info.Labels.Labels = append(info.Labels.Labels, Label{Key: k, Value: v})
		}
	}
	res, err := a.iso.Attach(t.Context(), tk.cid, tk.ns.Path(), []NetworkInfo{info})
	if err != nil {
		t.Fatalf("attaching %s: %v", name, err)
	}
	tk.ip = strings.TrimSuffix(res["calyx"].IP4.IP, "/32")
	if r6 := res["calyx"].IP6; r6 != nil {
		tk.v6 = strings.TrimSuffix(r6.IP, "/128")
	}
	return tk
}

func (a *agent) apply(t *testing.T, yaml string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := a.node.Ctl(ctx, yaml, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

func (a *agent) remove(t *testing.T, kind, name string) {
	t.Helper()
	a.ctl(t, "delete", kind, name)
}

// reach reports whether a TCP connection from one task to another's port
// opens and gets the greeting.
func reach(from, to *task, port int) bool {
	_, err := testnet.Connect(from.ns, net.JoinHostPort(to.ip, fmt.Sprint(port)))
	return err == nil
}

func pings(t *testing.T, from *task, ip string) bool {
	t.Helper()
	ok, err := testnet.Ping(t.Context(), from.ns, ip)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// eventually waits until cond holds (policy reaches the kernel
// asynchronously after the datastore write).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, what, cond)
}

// always checks that cond holds now and keeps holding for a while: used
// for "never opens" assertions after a change is known to be in force.
func always(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 3 {
		if !cond() {
			t.Fatalf("%s: no longer holds", what)
		}
	}
}

// TestPolicyWithRealPackets drives one host's calyx-node through the
// policy semantics of calico-design.md §6.2 and checks each with real
// packets between task namespaces.
func TestPolicyWithRealPackets(t *testing.T) {
	a := newAgent(t)
	web := a.launch(t, "web", []string{"app=web"})
	db := a.launch(t, "db", []string{"role=db"})
	api := a.launch(t, "api", []string{"role=api", "env=prod"})
	for _, tk := range []*task{web, db, api} {
		for _, port := range []int{80, 5432} {
			testnet.Serve(t, tk.ns, "tcp", fmt.Sprintf(":%d", port), tk.name)
		}
		testnet.Serve(t, tk.ns, "udp", ":53", tk.name)
	}

	t.Run("profile: members of a network reach each other", func(t *testing.T) {
		eventually(t, "web reaches db:5432", func() bool { return reach(web, db, 5432) })
		if !pings(t, db, web.ip) {
			t.Error("db cannot ping web")
		}
	})

	a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-from-api}
spec:
  order: 100
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == "api"}
    destination: {ports: ["5000:5500"]}
`)
	t.Run("allow by label, port range, end of tier", func(t *testing.T) {
		eventually(t, "web no longer reaches db:5432", func() bool { return !reach(web, db, 5432) })
		always(t, "api reaches db:5432", func() bool { return reach(api, db, 5432) })
		if reach(api, db, 80) {
			t.Error("api reached db:80, outside the allowed range (end of tier)")
		}
		if pings(t, web, db.ip) {
			t.Error("ping reached db: no rule allows ICMP (end of tier)")
		}
		if reach(db, web, 80) != true {
			t.Error("db's egress and web's ingress are not covered by the policy: the profile should allow")
		}
	})

	t.Run("policy trace agrees", func(t *testing.T) {
		out := a.ctl(t, "policy", "trace", "--from", web.ip, "--to", db.ip, "--port", "5432/tcp")
		if !strings.HasPrefix(out, "denied\n") || !strings.Contains(out, "end of tier") {
			t.Errorf("trace web -> db:5432:\n%s", out)
		}
		out = a.ctl(t, "policy", "trace", "--from", api.ip, "--to", db.ip, "--port", "5432/tcp")
		if !strings.HasPrefix(out, "allowed\n") || !strings.Contains(out, "policy db-from-api rule 0") {
			t.Errorf("trace api -> db:5432:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, stderr, err := a.node.Ctl(ctx, "", "policy", "trace", "--from", "nobody", "--to", db.ip); err == nil || !strings.Contains(stderr, `--from "nobody"`) {
			t.Errorf("trace from an unknown endpoint: err %v, stderr %q", err, stderr)
		}
	})

	a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-lockdown}
spec:
  order: 10
  selector: role == "db"
  ingress:
  - action: Deny
    protocol: TCP
    source: {selector: env == "prod"}
`)
	t.Run("a lower order deny wins", func(t *testing.T) {
		eventually(t, "api refused", func() bool { return !reach(api, db, 5432) })
	})
	a.remove(t, "globalnetworkpolicy", "db-lockdown")
	eventually(t, "api reaches db again", func() bool { return reach(api, db, 5432) })

	t.Run("icmp type", func(t *testing.T) {
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-ping}
spec:
  order: 200
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: ICMP
    icmp: {type: 8, code: 0}
`)
		eventually(t, "web pings db", func() bool { return pings(t, web, db.ip) })
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-ping}
spec:
  order: 200
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: ICMP
    icmp: {type: 13}
`)
		eventually(t, "echo requests refused once only timestamps are allowed", func() bool { return !pings(t, web, db.ip) })
		a.remove(t, "globalnetworkpolicy", "db-ping")
	})

	t.Run("pass to the profile", func(t *testing.T) {
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: web-lock}
spec:
  order: 60
  selector: app == "web"
  types: [Ingress]
`)
		eventually(t, "web closed (a policy with no rules)", func() bool { return !reach(db, web, 80) })
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: web-pass}
spec:
  order: 50
  selector: app == "web"
  ingress: [{action: Pass}]
`)
		eventually(t, "Pass skips web-lock and the profile allows", func() bool { return reach(db, web, 80) })
		a.remove(t, "globalnetworkpolicy", "web-pass")
		a.remove(t, "globalnetworkpolicy", "web-lock")
	})

	t.Run("egress rules, notNets", func(t *testing.T) {
		a.apply(t, fmt.Sprintf(`apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: web-out}
spec:
  selector: app == "web"
  egress:
  - action: Allow
    protocol: UDP
    destination: {notNets: [%s/32]}
`, db.ip))
		eventually(t, "web's TCP egress closed", func() bool { return !reach(web, api, 80) })
		if _, err := testnet.UDP(web.ns, net.JoinHostPort(api.ip, "53")); err != nil {
			t.Errorf("UDP to api (not in notNets) refused: %v", err)
		}
		if _, err := testnet.UDP(web.ns, net.JoinHostPort(db.ip, "53")); err == nil {
			t.Error("UDP to db (in notNets) got through")
		}
		a.remove(t, "globalnetworkpolicy", "web-out")
		eventually(t, "web's egress open again", func() bool { return reach(web, api, 80) })
	})

	t.Run("global network set nets, notSelector", func(t *testing.T) {
		a.apply(t, fmt.Sprintf(`apiVersion: calyx.dev/v1
kind: GlobalNetworkSet
metadata: {name: trusted, labels: {trust: "yes"}}
spec: {nets: [%s/32]}
---
apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: api-in}
spec:
  selector: role == "api"
  ingress:
  - action: Allow
    source: {selector: trust == "yes"}
  - action: Deny
    source: {notSelector: role == "db"}
  - action: Allow
`, web.ip))
		eventually(t, "db (neither trusted nor denied) reaches api", func() bool { return reach(db, api, 80) })
		if !reach(web, api, 80) {
			t.Error("web, in the trusted network set, refused")
		}
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkSet
metadata: {name: trusted, labels: {trust: "no"}}
spec: {nets: [192.0.2.200/32]}
`)
		eventually(t, "web refused once the set no longer holds it", func() bool { return !reach(web, api, 80) })
		a.remove(t, "globalnetworkpolicy", "api-in")
		a.remove(t, "globalnetworkset", "trusted")
	})

	t.Run("a policy edited while a connection is open", func(t *testing.T) {
		conn, err := testnet.Dial(api.ns, net.JoinHostPort(db.ip, "5432"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-from-api}
spec:
  order: 100
  selector: role == "db"
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == "nobody"}
`)
		eventually(t, "new connections refused", func() bool { return !reach(api, db, 5432) })
		if err := conn.Echo("still there"); err != nil {
			t.Errorf("the established connection dropped: %v", err)
		}
	})
}

// TestPolicySurvivesRestart: calyx-node killed and started again with
// policies in force: a denied connection never opens while it is down or
// starting, and an allowed flow keeps working throughout.
func TestPolicySurvivesRestart(t *testing.T) {
	a := newAgent(t)
	web := a.launch(t, "web", []string{"app=web"})
	db := a.launch(t, "db", []string{"role=db"})
	api := a.launch(t, "api", []string{"role=api"})
	testnet.Serve(t, db.ns, "tcp", ":5432", "db")
	a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: db-from-api}
spec:
  selector: role == "db"
  ingress:
  - action: Allow
    source: {selector: role == "api"}
`)
	eventually(t, "web refused", func() bool { return !reach(web, db, 5432) })
	conn, err := testnet.Dial(api.ns, net.JoinHostPort(db.ip, "5432"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	a.node.Kill()
	always(t, "web refused while calyx-node is down", func() bool { return !reach(web, db, 5432) })
	if err := conn.Echo("down"); err != nil {
		t.Fatalf("allowed flow dropped with calyx-node down: %v", err)
	}
	restarted := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		n, err := a.node.Restart(ctx)
		if err == nil {
			a.node = n
		}
		restarted <- err
	}()
	// While it starts (and resyncs the table it finds), keep probing.
	for done := false; !done; {
		select {
		case err := <-restarted:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
			if reach(web, db, 5432) {
				t.Fatal("a denied connection opened while calyx-node restarted")
			}
			if err := conn.Echo("restarting"); err != nil {
				t.Fatalf("allowed flow dropped while calyx-node restarted: %v", err)
			}
		}
	}
	t.Cleanup(func() { _ = a.node.Stop() })
	always(t, "web refused after the restart", func() bool { return !reach(web, db, 5432) })
	if !reach(api, db, 5432) {
		t.Error("api refused after the restart")
	}
	if err := conn.Echo("after"); err != nil {
		t.Errorf("allowed flow dropped after the restart: %v", err)
	}
}

// addrUp gives the named link of the current namespace addr/24 and sets
// it up.
func addrUp(name string, addr net.IP) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr, Mask: net.CIDRMask(24, 32)}}); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// external adds a namespace outside the cluster, linked to the host by a
// veth on 198.51.100.0/24 (host .2, outside .1), with no route back to
// the pool: only masqueraded traffic can be answered.
func (a *agent) external(t *testing.T) (ns.NetNS, netip.Addr) {
	t.Helper()
	ext := testnet.NewNS(t)
	host := a.node.NS()
	err := host.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ext0"}, PeerName: "ext0-peer"}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		peer, err := netlink.LinkByName("ext0-peer")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, int(ext.Fd())); err != nil {
			return err
		}
		return addrUp("ext0", net.IPv4(198, 51, 100, 2))
	})
	if err != nil {
		t.Fatalf("linking the outside namespace: %v", err)
	}
	err = ext.Do(func(ns.NetNS) error { return addrUp("ext0-peer", net.IPv4(198, 51, 100, 1)) })
	if err != nil {
		t.Fatalf("configuring the outside namespace: %v", err)
	}
	return ext, netip.MustParseAddr("198.51.100.2")
}

// TestNATOutgoingAndPortMapping: a natOutgoing pool's tasks reach the
// outside from the host's address; a Mesos port mapping takes the outside
// to the task, under the task's ingress policy.
func TestNATOutgoingAndPortMapping(t *testing.T) {
	a := newAgent(t)
	ext, hostAddr := a.external(t)
	srv := testnet.Serve(t, ext, "tcp", ":8080", "outside")
	web := a.launch(t, "web", []string{"app=web"}, PortMapping{HostPort: 31080, ContainerPort: 80, Protocol: "tcp"})
	testnet.Serve(t, web.ns, "tcp", ":80", "web")

	if _, err := testnet.Connect(web.ns, "198.51.100.1:8080"); err == nil {
		t.Fatal("the outside answered without masquerading: it has no route to the pool, so the test proves nothing")
	}
	a.apply(t, `apiVersion: calyx.dev/v1
kind: IPPool
metadata: {name: mesos-ipv4}
spec: {cidr: 10.67.0.0/16, blockSize: 26, natOutgoing: true}
`)
	eventually(t, "web reaches the outside", func() bool {
		_, err := testnet.Connect(web.ns, "198.51.100.1:8080")
		return err == nil
	})
	if p := srv.Peers(); len(p) == 0 || p[len(p)-1].Addr() != hostAddr {
		t.Errorf("the outside saw %v, want the host's address %s", p, hostAddr)
	}

	mapped := net.JoinHostPort(hostAddr.String(), "31080")
	if _, err := testnet.Connect(ext, mapped); err == nil {
		t.Error("the outside reached web through the mapping although web's profile admits only its network's members")
	}
	a.apply(t, webPublic(80))
	eventually(t, "the port mapping reaches web", func() bool {
		got, err := testnet.Connect(ext, mapped)
		return err == nil && got == "web"
	})
	a.apply(t, webPublic(8443))
	eventually(t, "the mapping obeys web's ingress policy (the container port is what policy sees)", func() bool {
		_, err := testnet.Connect(ext, mapped)
		return err != nil
	})
	a.remove(t, "globalnetworkpolicy", "web-public")
	a.apply(t, `apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: web-public}
spec:
  selector: app == "web"
  ingress: [{action: Allow}]
`)
	eventually(t, "open again", func() bool { _, err := testnet.Connect(ext, mapped); return err == nil })
	if err := a.iso.Detach(t.Context(), web.cid); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the mapping is gone after DEL", func() bool {
		_, err := testnet.Connect(ext, mapped)
		return err != nil
	})
}

// webPublic is a policy letting anyone reach app=web on a TCP port.
func webPublic(port int) string {
	return fmt.Sprintf(`apiVersion: calyx.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: web-public}
spec:
  selector: app == "web"
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [%d]}
`, port)
}
