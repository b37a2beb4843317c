package cni

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types020 "github.com/containernetworking/cni/pkg/types/020"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/localapi"
)

var allVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

func TestAddEveryVersion(t *testing.T) {
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			r := newRun(t)
			if err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, v, map[string]any{"mtu": 1450}))); err != nil {
				t.Fatalf("ADD: %v\nstderr: %s", err, r.stderr)
			}
			if d := cmp.Diff([]string{localapi.PathCNIAdd, localapi.PathCNIReady}, r.agent.paths()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			var add localapi.AddRequest
			r.agent.request(t, localapi.PathCNIAdd, &add)
			want := localapi.AddRequest{
				Attachment: localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"},
				IPAM:       localapi.IPAMRequest{AssignIPv4: true, AssignIPv6: true}, Netns: "/run/netns/c1", Orchestrator: "cni", MTU: 1450,
				PluginCreatesVeth: true,
			}
			if d := cmp.Diff(want, add); d != "" {
				t.Errorf("add request (-want +got):\n%s", d)
			}
			var ready localapi.ReadyRequest
			r.agent.request(t, localapi.PathCNIReady, &ready)
			if ready.HostIfName != "calyx0123456789" || ready.ContainerMAC != "0a:58:0a:41:00:07" || ready.Attachment != want.Attachment {
				t.Errorf("ready request %+v", ready)
			}
			if len(r.kernel.attached) != 1 || r.kernel.attached[0].MTU != 1450 || len(r.kernel.attached[0].IPs) != 2 {
				t.Errorf("attached %+v", r.kernel.attached)
			}
			res, err := version.NewResult(v, r.stdout.Bytes())
			if err != nil {
				t.Fatalf("result does not parse as %s: %v\n%s", v, err, r.stdout)
			}
			if res.Version() != v && !(v == "0.1.0" && res.Version() == "0.2.0") {
				t.Errorf("result version %s", res.Version())
			}
			r100, err := types100.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			if len(r100.IPs) != 2 || r100.IPs[0].Address.String() != "10.65.0.7/32" || r100.IPs[0].Gateway.String() != "169.254.1.1" {
				t.Errorf("result ips %+v", r100.IPs)
			}
			if strings.Contains(r.stdout.String(), "level=") {
				t.Errorf("log on stdout: %s", r.stdout)
			}
		})
	}
}

func TestAddMesos(t *testing.T) {
	r := newRun(t)
	stdin := r.conf(t, "0.2.0", map[string]any{"args": map[string]any{"org.apache.mesos": map[string]any{"network_info": map[string]any{
		"name": "net1", "labels": map[string]any{"labels": []map[string]string{{"key": "app", "value": "frontend"}, {"key": "role/tier", "value": "a b"}, {"key": "x_", "value": "y"}}},
		"port_mappings": []map[string]any{{"host_port": 31001, "container_port": 80, "protocol": "tcp"}},
	}}}})
	if err := r.plugin.Add(t.Context(), cmdArgs(stdin)); err != nil {
		t.Fatal(err)
	}
	var add localapi.AddRequest
	r.agent.request(t, localapi.PathCNIAdd, &add)
	if add.Orchestrator != "mesos" {
		t.Errorf("orchestrator %q", add.Orchestrator)
	}
	if d := cmp.Diff(map[string]string{"app": "frontend", "role.tier": "a-b"}, add.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]localapi.PortMapping{{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"}}, add.PortMappings); d != "" {
		t.Errorf("port mappings (-want +got):\n%s", d)
	}
	if !strings.Contains(r.stderr.String(), `dropping Mesos label \"x_\"`) {
		t.Errorf("no warning for the dropped label on stderr:\n%s", r.stderr)
	}
	// Mesos reads the 0.2.0 shape: ip4.ip is required.
	var res types020.Result
	if err := json.Unmarshal(r.stdout.Bytes(), &res); err != nil || res.IP4 == nil || res.IP4.IP.String() != "10.65.0.7/32" {
		t.Errorf("result %s: %v", r.stdout, err)
	}
}

func TestAddRollback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		breakIt   func(r *run)
		wantCalls []string
		code      uint
		msg       string
	}{
		{name: "ready fails", breakIt: func(r *run) {
			r.agent.set(localapi.PathCNIReady, func([]byte) (int, any) {
				return 500, localapi.Error{Message: "programming routes: boom"}
			})
		}, wantCalls: []string{localapi.PathCNIAdd, localapi.PathCNIReady, localapi.PathCNIDel}, code: types.ErrInternal, msg: "programming the host side: calyx-node: programming routes: boom"},
		{name: "ready says try again", breakIt: func(r *run) {
			r.agent.set(localapi.PathCNIReady, func([]byte) (int, any) { return 503, localapi.Error{Code: 11, Message: "dataplane busy"} })
		}, wantCalls: []string{localapi.PathCNIAdd, localapi.PathCNIReady, localapi.PathCNIDel}, code: 11, msg: "dataplane busy"},
		{name: "veth fails", breakIt: func(r *run) { r.kernel.attachErr = errors.New("file exists") },
			wantCalls: []string{localapi.PathCNIAdd, localapi.PathCNIDel}, code: types.ErrInternal, msg: "creating the veth calyx0123456789/eth0: file exists"},
		{name: "bad answer", breakIt: func(r *run) {
			r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
				return 200, localapi.AddResponse{HostIfName: "calyx0123456789", IPs: []string{"not-an-ip"}}
			})
		}, wantCalls: []string{localapi.PathCNIAdd, localapi.PathCNIDel}, code: types.ErrInternal, msg: `parsing address "not-an-ip"`},
		{name: "add refused", breakIt: func(r *run) {
			r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
				return 409, localapi.Error{Message: "pool 10.65.0.0/16 is exhausted"}
			})
		}, wantCalls: []string{localapi.PathCNIAdd}, code: types.ErrInternal, msg: "adding the endpoint: calyx-node: pool 10.65.0.0/16 is exhausted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t)
			tc.breakIt(r)
			err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "0.2.0", nil)))
			checkCNIError(t, err, tc.code, tc.msg)
			if d := cmp.Diff(tc.wantCalls, r.agent.paths()); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			if len(r.kernel.links) != 0 {
				t.Errorf("left behind: %v", r.kernel.links)
			}
			if r.stdout.Len() != 0 {
				t.Errorf("stdout: %s", r.stdout)
			}
		})
	}
}

// The container end gets the MAC calyx-node chose at ADD, and READY
// reports it back, so calyx-node has nothing to record.
func TestAddContainerMACFromAgent(t *testing.T) {
	r := newRun(t)
	const mac = "02:1f:3a:5b:7c:9d"
	r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
		return 200, localapi.AddResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: "calyx0123456789",
			IPs: []string{"10.65.0.7/32"}, Gateway4: "169.254.1.1", MTU: 1450, ContainerMAC: mac}
	})
	if err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil))); err != nil {
		t.Fatalf("ADD: %v\nstderr: %s", err, r.stderr)
	}
	if len(r.kernel.attached) != 1 || r.kernel.attached[0].MAC.String() != mac {
		t.Fatalf("attached %+v, want the container end created with MAC %s", r.kernel.attached, mac)
	}
	var ready localapi.ReadyRequest
	r.agent.request(t, localapi.PathCNIReady, &ready)
	if ready.ContainerMAC != mac {
		t.Errorf("READY reported MAC %q, want %q", ready.ContainerMAC, mac)
	}
	var res types100.Result
	if err := json.Unmarshal(r.stdout.Bytes(), &res); err != nil || len(res.Interfaces) != 2 || res.Interfaces[1].Mac != mac {
		t.Errorf("result interfaces %+v: %v", res.Interfaces, err)
	}

	// A bad MAC from calyx-node is refused before anything is built.
	for _, bad := range []string{"not-a-mac", "03:00:00:00:00:01", "02:00:00:00:00:00:00:01"} {
		r := newRun(t)
		r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
			return 200, localapi.AddResponse{HostIfName: "calyx0123456789", IPs: []string{"10.65.0.7/32"}, ContainerMAC: bad}
		})
		err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil)))
		checkCNIError(t, err, types.ErrInternal, "not a unicast Ethernet address")
		if len(r.kernel.attached) != 0 {
			t.Errorf("MAC %q: attached %+v", bad, r.kernel.attached)
		}
	}
}

func TestAddInterfaceExists(t *testing.T) {
	hostIf := localapi.HostIfName(localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}.Handle())
	for _, tc := range []struct {
		name      string
		link      string // the link that exists
		existing  bool   // calyx-node answers the endpoint existed
		wantCalls []string
	}{
		// A duplicate ADD: calyx-node found the endpoint, so nothing may
		// be undone; the interface belongs to a live attachment.
		{"duplicate", "/run/netns/c1/eth0", true, []string{localapi.PathCNIAdd}},
		{"duplicate, host end", "host/" + hostIf, true, []string{localapi.PathCNIAdd}},
		// Another plugin's eth0: what this ADD allocated is released.
		{"another plugin's", "/run/netns/c1/eth0", false, []string{localapi.PathCNIAdd, localapi.PathCNIDel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t)
			r.kernel.links[tc.link] = true
			r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
				return 200, localapi.AddResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: hostIf, IPs: []string{"10.65.0.7/32"}, Existing: tc.existing}
			})
			err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil)))
			checkCNIError(t, err, localapi.CodeAttachmentExists, "interface eth0 already exists in /run/netns/c1")
			if d := cmp.Diff(tc.wantCalls, r.agent.paths()); d != "" || len(r.kernel.detached) != 0 || !r.kernel.links[tc.link] {
				t.Errorf("calls (-want +got):\n%s\ndetached %v, links %v", d, r.kernel.detached, r.kernel.links)
			}
		})
	}
}

// TestAddReplacesStaleHostEnd: a host end left by an earlier ADD of the
// same attachment, whose endpoint calyx-node no longer has, is replaced.
func TestAddReplacesStaleHostEnd(t *testing.T) {
	r := newRun(t)
	hostIf := localapi.HostIfName(localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}.Handle())
	r.kernel.links["host/"+hostIf] = true
	r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
		return 200, localapi.AddResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: hostIf, IPs: []string{"10.65.0.7/32"}, MTU: 1500}
	})
	if err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil))); err != nil {
		t.Fatalf("ADD: %v\nstderr: %s", err, r.stderr)
	}
	if d := cmp.Diff([][3]string{{"", "", hostIf}}, r.kernel.detached); d != "" {
		t.Errorf("detached (-want +got):\n%s", d)
	}
	if len(r.kernel.created) != 1 || len(r.kernel.attached) != 1 || !r.kernel.links["host/"+hostIf] || !r.kernel.links["/run/netns/c1/eth0"] {
		t.Errorf("created %v attached %v links %v", r.kernel.created, r.kernel.attached, r.kernel.links)
	}
	if d := cmp.Diff([]string{localapi.PathCNIAdd, localapi.PathCNIReady}, r.agent.paths()); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
}

func TestAddConfigErrors(t *testing.T) {
	r := newRun(t)
	for _, tc := range []struct {
		extra map[string]any
		code  uint
		msg   string
	}{
		{map[string]any{"ipam": map[string]any{"type": "host-local"}}, 7, `config key "ipam.type": calyx takes its addresses from calyx-node and needs "calyx-ipam", got "host-local"`},
		{map[string]any{"ipam": map[string]any{"assign_ipv4": "maybe"}}, 7, `config key "ipam.assign_ipv4"`},
		{map[string]any{"mtu": -1}, 7, `config key "mtu"`},
		{map[string]any{"args": map[string]any{"org.apache.mesos": map[string]any{"network_info": map[string]any{
			"port_mappings": []map[string]any{{"host_port": 31001, "container_port": 0}},
		}}}}, 7, `config key "args.org.apache.mesos.network_info.port_mappings[0].container_port": expected a port number 1-65535, got 0`},
	} {
		err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "0.2.0", tc.extra)))
		checkCNIError(t, err, tc.code, tc.msg)
	}
	args := cmdArgs(r.conf(t, "0.2.0", nil))
	args.Netns = "/missing/ns"
	checkCNIError(t, r.plugin.Add(t.Context(), args), types.ErrInvalidNetNS, "opening CNI_NETNS /missing/ns")
	// The namespace is opened while calyx-node allocates, which is undone.
	if d := cmp.Diff([]string{localapi.PathCNIAdd, localapi.PathCNIDel}, r.agent.paths()); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
}

func TestUnreachable(t *testing.T) {
	r := newRun(t)
	stdin := r.conf(t, "1.1.0", map[string]any{"agent_socket": "/nonexistent/calyx.sock"})
	wantMsg := []string{"cannot reach calyx-node at /nonexistent/calyx.sock", "is calyx-node running on this host?", "systemctl start calyx-node"}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
		code uint
	}{
		{"ADD", func(ctx context.Context) error { return r.plugin.Add(ctx, cmdArgs(stdin)) }, types.ErrTryAgainLater},
		{"DEL", func(ctx context.Context) error { return r.plugin.Del(ctx, cmdArgs(stdin)) }, types.ErrTryAgainLater},
		{"GC", func(ctx context.Context) error { return r.plugin.GC(ctx, cmdArgs(stdin)) }, types.ErrTryAgainLater},
		{"STATUS", func(ctx context.Context) error { return r.plugin.Status(ctx, cmdArgs(stdin)) }, types.ErrPluginNotAvailable},
		{"IPAM ADD", func(ctx context.Context) error { return r.ipam.Add(ctx, cmdArgs(stdin)) }, types.ErrTryAgainLater},
		{"IPAM DEL", func(ctx context.Context) error { return r.ipam.Del(ctx, cmdArgs(stdin)) }, types.ErrTryAgainLater},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t.Context())
			for _, m := range wantMsg {
				checkCNIError(t, err, tc.code, m)
			}
		})
	}
	// DEL still cleaned the container side, and ADD left nothing (it
	// deleted the veth it made while it asked calyx-node).
	if len(r.kernel.links) != 0 || len(r.kernel.attached) != 0 {
		t.Errorf("links %v attached %v", r.kernel.links, r.kernel.attached)
	}
	hostIf := localapi.HostIfName(localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}.Handle())
	want := [][3]string{{"", "", hostIf}, {"/run/netns/c1", "eth0", ""}}
	if d := cmp.Diff(want, r.kernel.detached); d != "" {
		t.Errorf("detached (-want +got):\n%s", d)
	}
}

func TestDel(t *testing.T) {
	r := newRun(t)
	// The saved Mesos stdin, with a value only ADD would refuse.
	stdin := r.conf(t, "0.2.0", map[string]any{"mtu": "huge", "args": map[string]any{"org.apache.mesos": map[string]any{}}})
	for _, netns := range []string{"/run/netns/c1", ""} {
		args := cmdArgs(stdin)
		args.Netns = netns
		if err := r.plugin.Del(t.Context(), args); err != nil {
			t.Fatalf("DEL with CNI_NETNS=%q: %v", netns, err)
		}
	}
	if d := cmp.Diff([]string{localapi.PathCNIDel, localapi.PathCNIDel}, r.agent.paths()); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	var del localapi.DelRequest
	r.agent.request(t, localapi.PathCNIDel, &del)
	if del.Attachment != (localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}) || !del.DeferVethDelete {
		t.Errorf("del request %+v", del)
	}
	// calyx-node deletes the veth once it has answered.
	if len(r.kernel.detached) != 0 {
		t.Errorf("detached %v", r.kernel.detached)
	}
	if !strings.Contains(r.stderr.String(), "ignoring a bad config value for DEL") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// With the container's MAC from calyx-node, READY goes while the
// container side is set up; a failure there still undoes everything.
func TestAddReadyAlongsideContainerSide(t *testing.T) {
	const mac = "02:1f:3a:5b:7c:9d"
	for _, fail := range []bool{false, true} {
		r := newRun(t)
		r.agent.set(localapi.PathCNIAdd, func([]byte) (int, any) {
			return 200, localapi.AddResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: "calyx0123456789",
				IPs: []string{"10.65.0.7/32"}, Gateway4: "169.254.1.1", MTU: 1450, ContainerMAC: mac}
		})
		if fail {
			r.kernel.attachErr = errors.New("no route")
		}
		err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil)))
		want := []string{localapi.PathCNIAdd, localapi.PathCNIReady}
		if fail {
			checkCNIError(t, err, types.ErrInternal, "creating the veth calyx0123456789/eth0: no route")
			want = append(want, localapi.PathCNIDel)
			if len(r.kernel.links) != 0 {
				t.Errorf("left behind: %v", r.kernel.links)
			}
		} else if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		if d := cmp.Diff(want, r.agent.paths()); d != "" {
			t.Errorf("fail=%v: calls (-want +got):\n%s", fail, d)
		}
		if !fail && len(r.kernel.attached) != 1 {
			t.Errorf("attached %+v", r.kernel.attached)
		}
	}
}
