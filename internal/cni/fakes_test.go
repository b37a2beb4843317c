package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/calyx-net/calyx/internal/localapi"
)

// fakeAgent is calyx-node's local API, served over a unix socket by
// httptest, answering from a table of handlers and recording every call.
type fakeAgent struct {
	socket string
	mu     sync.Mutex
	calls  []agentCall
	answer map[string]func(body []byte) (int, any)
}

type agentCall struct {
	Path string
	Body []byte
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir() can exceed it.
	dir, err := os.MkdirTemp("", "calyx-cni") //nolint:usetesting // see above
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := &fakeAgent{socket: filepath.Join(dir, "calyx.sock"), answer: map[string]func([]byte) (int, any){}}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	f.answer[localapi.PathCNIAdd] = func([]byte) (int, any) {
		return 200, localapi.AddResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: "calyx0123456789",
			IPs: []string{"10.65.0.7/32", "fd65::7/128"}, Gateway4: "169.254.1.1", Gateway6: "fe80::ecee:eeff:feee:eeee", MTU: 1450}
	}
	ok := func([]byte) (int, any) { return 200, struct{}{} }
	f.answer[localapi.PathCNIReady] = ok
	f.answer[localapi.PathCNIDel] = ok
	f.answer[localapi.PathIPAMDel] = ok
	f.answer[localapi.PathCNIGC] = func([]byte) (int, any) {
		return 200, localapi.GCResponse{Released: []localapi.Attachment{{Network: "net1", ContainerID: "old", IfName: "eth0"}}}
	}
	f.answer[localapi.PathStatus] = func([]byte) (int, any) { return 200, localapi.StatusResponse{Ready: true, Node: "host1"} }
	f.answer[localapi.PathCNICheck] = func([]byte) (int, any) {
		return 200, localapi.CheckResponse{Endpoint: "host1-cni-c1-eth0", HostIfName: "calyx0123456789", IPs: []string{"10.65.0.7/32", "fd65::7/128"}}
	}
	f.answer[localapi.PathIPAMAdd] = func([]byte) (int, any) {
		return 200, localapi.IPAMAddResponse{IPs: []localapi.IPAMAddress{{Address: "10.65.0.9/16", Gateway: "10.65.0.1"}}}
	}
	return f
}

func (f *fakeAgent) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, agentCall{Path: r.URL.Path, Body: body})
	h := f.answer[r.URL.Path]
	f.mu.Unlock()
	if h == nil {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(localapi.Error{Message: "no such path " + r.URL.Path})
		return
	}
	code, resp := h(body)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeAgent) set(path string, h func([]byte) (int, any)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[path] = h
}

// paths lists the paths called, in order.
func (f *fakeAgent) paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Path)
	}
	return out
}

// request decodes the body of the last call to path into v.
func (f *fakeAgent) request(t *testing.T, path string, v any) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].Path == path {
			if err := json.Unmarshal(f.calls[i].Body, v); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no call to %s; calls: %v", path, f.calls)
}

// fakeKernel keeps links as names in a set: "NETNS/IFNAME" for container
// ends, "host/NAME" for host ends.
type fakeKernel struct {
	mu        sync.Mutex
	links     map[string]bool
	attachErr error
	problems  []string
	created   []vethSpec
	attached  []vethSpec
	detached  [][3]string
}

var _ kernel = (*fakeKernel)(nil)

func newFakeKernel() *fakeKernel { return &fakeKernel{links: map[string]bool{}} }

func (k *fakeKernel) LinkExists(_ context.Context, netns, ifName string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if strings.HasPrefix(netns, "/missing") {
		return false, errors.New("no such file or directory")
	}
	return k.links[netns+"/"+ifName], nil
}

func (k *fakeKernel) Create(_ context.Context, s vethSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if strings.HasPrefix(s.Netns, "/missing") {
		return &netnsError{path: s.Netns, err: errors.New("no such file or directory")}
	}
	if k.links[s.Netns+"/"+s.IfName] || k.links["host/"+s.HostIfName] {
		return fmt.Errorf("creating veth %s / %s: %w", s.HostIfName, s.IfName, fs.ErrExist)
	}
	k.links[s.Netns+"/"+s.IfName] = true
	k.links["host/"+s.HostIfName] = true
	k.created = append(k.created, s)
	return nil
}

func (k *fakeKernel) HostUp(_ context.Context, s vethSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.TempHostIfName != "" {
		delete(k.links, "host/"+s.TempHostIfName)
	}
	k.links["host/"+s.HostIfName] = true
	return nil
}

func (k *fakeKernel) ConfigureContainer(_ context.Context, s vethSpec) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.attachErr != nil {
		delete(k.links, s.Netns+"/"+s.IfName)
		delete(k.links, "host/"+s.HostIfName)
		return "", k.attachErr
	}
	k.attached = append(k.attached, s)
	k.links[s.Netns+"/"+s.IfName] = true
	if s.MAC != nil {
		return s.MAC.String(), nil
	}
	return "0a:58:0a:41:00:07", nil
}

func (k *fakeKernel) Detach(_ context.Context, netns, ifName, hostIfName string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.detached = append(k.detached, [3]string{netns, ifName, hostIfName})
	if hostIfName != "" {
		// A veth pair goes as one.
		for _, a := range append(slices.Clone(k.created), k.attached...) {
			if a.HostIfName == hostIfName && k.links["host/"+hostIfName] {
				delete(k.links, a.Netns+"/"+a.IfName)
			}
		}
		delete(k.links, "host/"+hostIfName)
	}
	if netns != "" {
		delete(k.links, netns+"/"+ifName)
	}
	return nil
}

func (k *fakeKernel) Check(_ context.Context, _ vethSpec) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.problems, nil
}

// run holds one plugin under test with its fakes.
type run struct {
	agent  *fakeAgent
	kernel *fakeKernel
	plugin *Plugin
	ipam   *IPAM
	stdout *bytes.Buffer
	stderr *bytes.Buffer
}

func newRun(t *testing.T) *run {
	t.Helper()
	r := &run{agent: newFakeAgent(t), kernel: newFakeKernel(), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	r.plugin = newPlugin(r.stdout, r.stderr, r.kernel)
	r.ipam = NewIPAM(r.stdout, r.stderr)
	return r
}

// conf returns a network config for the fake agent, with extra keys
// merged in (a nil value deletes a key).
func (r *run) conf(t *testing.T, version string, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{"cniVersion": version, "name": "net1", "type": "calyx",
		"ipam": map[string]any{"type": "calyx-ipam", "assign_ipv6": "true"}, "agent_socket": r.agent.socket}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cmdArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/c1", IfName: "eth0", Path: "/opt/cni/bin", StdinData: stdin}
}

func ipamResponse(addr, gw string) localapi.IPAMAddResponse {
	return localapi.IPAMAddResponse{IPs: []localapi.IPAMAddress{{Address: addr, Gateway: gw}}}
}
