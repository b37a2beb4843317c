package testnet_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/testnet"
)

func TestProxyCutAndRestore(t *testing.T) {
	e := testnet.StartEtcd(t)
	p := testnet.StartProxy(t, e.Endpoints()[0][len("https://"):])
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := datastore.New(ctx, proxied(e, p), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Revision(ctx); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Revision(short)
	cancelShort()
	if err == nil {
		t.Error("a request through a cut proxy succeeded")
	}
	p.Restore()
	testnet.WaitFor(t, "the client to reconnect after Restore", func() bool {
		_, err := c.Revision(ctx)
		return err == nil
	})
	if p.Cuts() != 1 {
		t.Errorf("Cuts() = %d", p.Cuts())
	}
}

// proxied is e's client configuration with the proxy as the endpoint.
func proxied(e *datastore.Embedded, p *testnet.Proxy) datastore.Config {
	cfg := testnet.ClientConfig(e)
	cfg.Endpoints = []string{p.URL()}
	return cfg
}
