package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/calyx-net/calyx/internal/testnet"
	"github.com/calyx-net/calyx/test/hostnode"
)

// runPlugin runs a Calyx plugin binary in the host namespace as a runtime
// would, with conf on stdin, and returns its stdout and stderr.
func (h *host) runPlugin(t *testing.T, plugin, command, containerID string, netns ns.NetNS, conf map[string]any, extraEnv ...string) (string, string, error) {
	t.Helper()
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, plugin))
	cmd.Env = append([]string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=" + netns.Path(),
		"CNI_IFNAME=eth0", "CNI_PATH=" + binDir, "PATH=" + os.Getenv("PATH")}, extraEnv...)
	cmd.Stdin = bytes.NewReader(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = hostnode.RunIn(h.ns, cmd)
	return out.String(), errb.String(), err
}

// oneError decodes stdout as exactly one CNI error object.
func oneError(t *testing.T, stdout string) types.Error {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var e types.Error
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("stdout is not a CNI error: %v\n%s", err, stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON object:\n%s", stdout)
	}
	return e
}

// TestOwnNetns runs both plugins in the host's namespace with that same
// namespace as CNI_NETNS (the host is a namespace the test made, so the
// machine's own namespace is never at risk). ADD and CHECK must print one
// code 8 error naming the namespace and change nothing; DEL must succeed.
func TestOwnNetns(t *testing.T) {
	h := newHost(t)
	linksBefore := testnet.Links(t, h.ns)
	conf := h.calyxConf("1.0.0", "own-net", true)
	prev := map[string]any{"cniVersion": "1.0.0",
		"interfaces": []any{map[string]any{"name": "calyx0123456789"}, map[string]any{"name": "eth0", "sandbox": h.ns.Path()}},
		"ips":        []any{map[string]any{"address": "10.66.0.5/32", "gateway": "169.254.1.1", "interface": 1}}}
	for _, plugin := range []string{"calyx", "calyx-ipam"} {
		for _, command := range []string{"ADD", "CHECK"} {
			t.Run(plugin+"/"+command, func(t *testing.T) {
				c := conf
				if command == "CHECK" {
					c = map[string]any{}
					for k, v := range conf {
						c[k] = v
					}
					c["prevResult"] = prev
				}
				out, stderr, err := h.runPlugin(t, plugin, command, "own-"+plugin, h.ns, c)
				if err == nil {
					t.Fatalf("%s succeeded:\n%s", command, out)
				}
				e := oneError(t, out)
				if e.Code != types.ErrInvalidNetNS || !strings.Contains(e.Msg, "CNI_NETNS "+h.ns.Path()+" is the network namespace the plugin runs in") {
					t.Errorf("error %+v\nstderr: %s", e, stderr)
				}
			})
		}
	}
	if after := testnet.Links(t, h.ns); !slices.Equal(after, linksBefore) {
		t.Errorf("links in the host changed: %v -> %v", linksBefore, after)
	}
	if weps := h.weps(t); strings.Contains(weps, "own-calyx") {
		t.Errorf("an endpoint was written:\n%s", weps)
	}
	if out := h.ctl(t, "", "ipam", "show"); !strings.Contains(out, "(no node holds a block)") {
		t.Errorf("something was allocated:\n%s", out)
	}
	for _, plugin := range []string{"calyx", "calyx-ipam"} {
		out, stderr, err := h.runPlugin(t, plugin, "DEL", "own-"+plugin, h.ns, conf)
		if err != nil || out != "" {
			t.Errorf("%s DEL: %v\nstdout: %s\nstderr: %s", plugin, err, out, stderr)
		}
	}
	if after := testnet.Links(t, h.ns); !slices.Equal(after, linksBefore) {
		t.Errorf("links in the host changed by DEL: %v -> %v", linksBefore, after)
	}
}
