package cni

import (
	"encoding/json"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/localapi"
)

// prevConf is a config carrying the result of an ADD as prevResult, as
// libcni builds it for CHECK.
func prevConf(t *testing.T, r *run, version string) []byte {
	t.Helper()
	if err := r.plugin.Add(t.Context(), cmdArgs(r.conf(t, version, nil))); err != nil {
		t.Fatal(err)
	}
	var prev map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &prev); err != nil {
		t.Fatal(err)
	}
	r.stdout.Reset()
	return r.conf(t, version, map[string]any{"prevResult": prev})
}

func TestCheck(t *testing.T) {
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			r := newRun(t)
			stdin := prevConf(t, r, v)
			if err := r.plugin.Check(t.Context(), cmdArgs(stdin)); err != nil {
				t.Fatalf("CHECK right after ADD: %v", err)
			}
			var req localapi.CheckRequest
			r.agent.request(t, localapi.PathCNICheck, &req)
			if req.Attachment != (localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"}) {
				t.Errorf("check request %+v", req)
			}

			r.kernel.problems = []string{"route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing"}
			err := r.plugin.Check(t.Context(), cmdArgs(stdin))
			checkCNIError(t, err, localapi.CodeCheckFailed, "CHECK of eth0 in /run/netns/c1: route 0.0.0.0/0 via 169.254.1.1 dev eth0 is missing")

			r.kernel.problems = nil
			r.agent.set(localapi.PathCNICheck, func([]byte) (int, any) {
				return 200, localapi.CheckResponse{HostIfName: "calyxffffffffff", IPs: []string{"10.65.0.7/32"}, Problems: []string{"no route to 10.65.0.7 on the host"}}
			})
			err = r.plugin.Check(t.Context(), cmdArgs(stdin))
			for _, m := range []string{"no route to 10.65.0.7 on the host", "host interface is calyx0123456789, calyx-node has calyxffffffffff", "address fd65::7 is not allocated"} {
				checkCNIError(t, err, localapi.CodeCheckFailed, m)
			}
		})
	}
}

func TestCheckNeedsPrevResult(t *testing.T) {
	r := newRun(t)
	checkCNIError(t, r.plugin.Check(t.Context(), cmdArgs(r.conf(t, "1.0.0", nil))), types.ErrInvalidNetworkConfig, "CHECK needs the ADD's result as prevResult")
	stdin := r.conf(t, "1.0.0", map[string]any{"prevResult": map[string]any{"cniVersion": "1.0.0",
		"interfaces": []any{map[string]any{"name": "eth1", "sandbox": "/run/netns/c1"}}}})
	checkCNIError(t, r.plugin.Check(t.Context(), cmdArgs(stdin)), types.ErrInvalidNetworkConfig, "prevResult has no interface eth0 in a sandbox")
}

func TestStatus(t *testing.T) {
	r := newRun(t)
	stdin := r.conf(t, "1.1.0", nil)
	if err := r.plugin.Status(t.Context(), cmdArgs(stdin)); err != nil {
		t.Fatal(err)
	}
	if err := r.ipam.Status(t.Context(), cmdArgs(stdin)); err != nil {
		t.Fatal(err)
	}
	r.agent.set(localapi.PathStatus, func([]byte) (int, any) {
		return 200, localapi.StatusResponse{Node: "host1", Message: "datastore not synced"}
	})
	checkCNIError(t, r.plugin.Status(t.Context(), cmdArgs(stdin)), types.ErrPluginNotAvailable, `calyx-node on node "host1" is not ready: datastore not synced`)
	r.agent.set(localapi.PathStatus, func([]byte) (int, any) { return 500, localapi.Error{Message: "broken"} })
	checkCNIError(t, r.ipam.Status(t.Context(), cmdArgs(stdin)), types.ErrPluginNotAvailable, "calyx-node: broken")
}

func TestGC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  []localapi.Attachment
	}{
		{"valid-attachments", map[string]any{"cni.dev/valid-attachments": []map[string]string{{"containerID": "c1", "ifname": "eth0"}}},
			[]localapi.Attachment{{Network: "net1", ContainerID: "c1", IfName: "eth0"}}},
		{"old attachments key", map[string]any{"cni.dev/attachments": []map[string]string{{"containerID": "c2", "ifname": "eth1"}}},
			[]localapi.Attachment{{Network: "net1", ContainerID: "c2", IfName: "eth1"}}},
		{"none valid", map[string]any{"cni.dev/valid-attachments": []any{}}, []localapi.Attachment{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t)
			if err := r.plugin.GC(t.Context(), cmdArgs(r.conf(t, "1.1.0", tc.extra))); err != nil {
				t.Fatal(err)
			}
			if err := r.ipam.GC(t.Context(), cmdArgs(r.conf(t, "1.1.0", tc.extra))); err != nil {
				t.Fatal(err)
			}
			var req localapi.GCRequest
			r.agent.request(t, localapi.PathCNIGC, &req)
			if d := cmp.Diff(localapi.GCRequest{Network: "net1", Valid: tc.want}, req); d != "" {
				t.Errorf("gc request (-want +got):\n%s", d)
			}
		})
	}
}

func TestIPAM(t *testing.T) {
	r := newRun(t)
	stdin := r.conf(t, "1.0.0", map[string]any{"type": "bridge", "agent_socket": nil,
		"ipam": map[string]any{"type": "calyx-ipam", "agent_socket": r.agent.socket, "ipv4_pools": []string{"10.65.0.0/16"},
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}})
	args := cmdArgs(stdin)
	args.Args = "IgnoreUnknown=1;IP=10.65.0.9;K8S_POD_NAME=p"
	if err := r.ipam.Add(t.Context(), args); err != nil {
		t.Fatal(err)
	}
	var req localapi.IPAMAddRequest
	r.agent.request(t, localapi.PathIPAMAdd, &req)
	want := localapi.IPAMAddRequest{Attachment: localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"},
		IPAM: localapi.IPAMRequest{AssignIPv4: true, IPv4Pools: []string{"10.65.0.0/16"}, RequestedIPs: []string{"10.65.0.9"}}}
	if d := cmp.Diff(want, req); d != "" {
		t.Errorf("ipam add request (-want +got):\n%s", d)
	}
	wantOut := `{"cniVersion":"1.0.0","ips":[{"address":"10.65.0.9/16","gateway":"10.65.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}`
	if got := canonical(t, r.stdout.Bytes()); got != canonical(t, []byte(wantOut)) {
		t.Errorf("result %s\nwant %s", got, wantOut)
	}

	var prev map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &prev); err != nil {
		t.Fatal(err)
	}
	var checkConf map[string]any
	_ = json.Unmarshal(stdin, &checkConf)
	checkConf["prevResult"] = prev
	checkStdin, _ := json.Marshal(checkConf)
	r.agent.set(localapi.PathCNICheck, func([]byte) (int, any) {
		return 200, localapi.CheckResponse{IPs: []string{"10.65.0.9/32"}, Problems: []string{"no endpoint: not IPAM's business"}}
	})
	if err := r.ipam.Check(t.Context(), cmdArgs(checkStdin)); err != nil {
		t.Errorf("IPAM CHECK: %v", err)
	}
	r.agent.set(localapi.PathCNICheck, func([]byte) (int, any) { return 200, localapi.CheckResponse{} })
	checkCNIError(t, r.ipam.Check(t.Context(), cmdArgs(checkStdin)), localapi.CodeCheckFailed, "address 10.65.0.9 is not allocated")

	if err := r.ipam.Del(t.Context(), cmdArgs(stdin)); err != nil {
		t.Fatal(err)
	}
	var del localapi.IPAMDelRequest
	r.agent.request(t, localapi.PathIPAMDel, &del)
	if del.Attachment != want.Attachment {
		t.Errorf("ipam del %+v", del)
	}

	// A bad answer is released, not leaked.
	r.agent.set(localapi.PathIPAMAdd, func([]byte) (int, any) { return 200, ipamResponse("10.65.0.10", "") })
	checkCNIError(t, r.ipam.Add(t.Context(), cmdArgs(stdin)), types.ErrInternal, `calyx-node answered address "10.65.0.10"`)
	paths := r.agent.paths()
	if paths[len(paths)-1] != localapi.PathIPAMDel {
		t.Errorf("calls %v", paths)
	}
}
