package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/localapi"
)

// TestCNICodes drives the local API into each failure that has a CNI code
// of its own and checks the status and code it answers with.
func TestCNICodes(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
	ctx := t.Context()
	withIPs := func(cid string, ips ...string) localapi.AddRequest {
		r := addReq(attachment(cid, "eth0"))
		r.IPAM.RequestedIPs = ips
		return r
	}
	if err := n.client.Do(ctx, localapi.PathCNIAdd, withIPs("holder", "10.65.0.50"), nil); err != nil {
		t.Fatal(err)
	}
	otherNet := addReq(localapi.Attachment{Network: "net2", ContainerID: "holder", IfName: "eth0"})
	missingPool := addReq(attachment("c-pool", "eth0"))
	missingPool.IPAM.IPv4Pools = []string{"no-such-pool"}
	for _, tc := range []struct {
		name   string
		path   string
		req    any
		status int
		code   uint
		msg    string
	}{
		{"missing pool", localapi.PathCNIAdd, missingPool, http.StatusBadRequest, localapi.CodeInvalidNetworkConfig, `IP pool "no-such-pool" does not exist`},
		{"missing pool, IPAM only", localapi.PathIPAMAdd, localapi.IPAMAddRequest{Attachment: missingPool.Attachment, IPAM: missingPool.IPAM},
			http.StatusBadRequest, localapi.CodeInvalidNetworkConfig, `IP pool "no-such-pool" does not exist`},
		{"address in use", localapi.PathCNIAdd, withIPs("c-inuse", "10.65.0.50"), http.StatusConflict, localapi.CodeAddressInUse, "10.65.0.50 is already assigned"},
		{"address outside the pools", localapi.PathCNIAdd, withIPs("c-out", "192.0.2.99"), http.StatusBadRequest, localapi.CodeAddressNotInPool, "192.0.2.99 is outside every IP pool"},
		{"two IPv4 addresses", localapi.PathCNIAdd, withIPs("c-two", "10.65.0.51", "10.65.0.52"), http.StatusBadRequest, localapi.CodeInvalidEnvironment, "asked for 2 IPv4 and 0 IPv6 addresses"},
		{"interface on another network", localapi.PathCNIAdd, otherNet, http.StatusConflict, localapi.CodeAttachmentExists, "already has interface eth0 on another network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.client.Do(ctx, tc.path, tc.req, nil)
			checkAPIError(t, err, tc.status, tc.code, tc.msg)
		})
	}
	t.Run("no pool for the node", func(t *testing.T) {
		n := startNode(t, testStartEtcdNoPool(t), hooks{kernel: route.NewFake(), policy: fakeNftables()}, nil)
		err := n.client.Do(t.Context(), localapi.PathCNIAdd, addReq(attachment("ctr", "eth0")), nil)
		checkAPIError(t, err, http.StatusInternalServerError, localapi.CodeNoFreeAddress, "no IP pool matches node node-a")
	})
	t.Run("request too large", func(t *testing.T) {
		big := addReq(attachment("c-big", "eth0"))
		big.Labels = map[string]string{"big": strings.Repeat("x", localapi.MaxRequestBytes)}
		// The client refuses to send it...
		checkAPIError(t, n.client.Do(ctx, localapi.PathCNIAdd, big, nil), http.StatusRequestEntityTooLarge, localapi.CodeInvalidNetworkConfig, "more than calyx-node accepts")
		// ...and calyx-node refuses it when sent anyway.
		body, err := json.Marshal(big)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", n.cfg.Socket)
		}}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://calyx-node"+localapi.PathCNIAdd, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var e localapi.Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != localapi.CodeInvalidNetworkConfig || !strings.Contains(e.Message, "larger than calyx-node accepts") {
			t.Errorf("HTTP %d %+v", resp.StatusCode, e)
		}
	})
}

func checkAPIError(t *testing.T, err error, status int, code uint, msg string) {
	t.Helper()
	var e *localapi.APIError
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an API error", err)
	}
	if e.Status != status || e.Body.Code != code || !strings.Contains(e.Body.Message, msg) {
		t.Errorf("got HTTP %d code %d %q; want HTTP %d code %d containing %q", e.Status, e.Body.Code, e.Body.Message, status, code, msg)
	}
}
