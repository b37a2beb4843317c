package localapi_test

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/calyx-net/calyx/internal/localapi"
)

// TestAddRequestPortMappingsRoundTrip sends an ADD with port mappings
// through the client to a server on a unix socket, as calyx-node decodes
// it, and checks the wire names and that nothing is lost.
func TestAddRequestPortMappingsRoundTrip(t *testing.T) {
	want := localapi.AddRequest{
		Attachment:   localapi.Attachment{Network: "net1", ContainerID: "c1", IfName: "eth0"},
		IPAM:         localapi.IPAMRequest{AssignIPv4: true},
		Orchestrator: "mesos",
		PortMappings: []localapi.PortMapping{
			{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 65535, ContainerPort: 53, Protocol: "udp"},
		},
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	var got localapi.AddRequest
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := json.Unmarshal(body, &got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(localapi.AddResponse{Endpoint: "ep"})
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})

	c := localapi.NewClient(sock)
	var resp localapi.AddResponse
	if err := c.Do(t.Context(), localapi.PathCNIAdd, want, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Endpoint != "ep" {
		t.Errorf("response %+v", resp)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decoded request (-sent +got):\n%s", d)
	}
	wantWire := `[{"hostPort":31001,"containerPort":80,"protocol":"tcp"},{"hostPort":65535,"containerPort":53,"protocol":"udp"}]`
	if string(raw["portMappings"]) != wantWire {
		t.Errorf("portMappings on the wire: %s, want %s", raw["portMappings"], wantWire)
	}
}

// TestAddRequestWithoutPortMappings checks that an ADD without port
// mappings leaves the key out, so an older calyx-node sees the request it
// always saw.
func TestAddRequestWithoutPortMappings(t *testing.T) {
	b, err := json.Marshal(localapi.AddRequest{Attachment: localapi.Attachment{Network: "n", ContainerID: "c", IfName: "eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "portMappings") {
		t.Errorf("request without port mappings: %s", b)
	}
}
