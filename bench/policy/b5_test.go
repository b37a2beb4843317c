package main

import (
	"context"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/testnet"
)

// TestB5Flips runs B5's world once: each case's write flips what the
// probes see, both ways, and both clocks read something.
func TestB5Flips(t *testing.T) {
	testnet.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w, err := newB5World(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for _, kind := range b5Cases {
		for _, allow := range []bool{true, false} {
			ours, raw, err := w.b5Sample(ctx, kind, allow)
			if err != nil {
				t.Fatal(err)
			}
			if ours <= 0 || raw <= 0 {
				t.Errorf("%s allow=%v: write→enforced %s, raw watch %s", kind, allow, ours, raw)
			}
			t.Logf("%s allow=%v: write→enforced %s, raw watch %s", kind, allow, ours, raw)
		}
		if kind == "policy" {
			if err := w.apply(ctx, b5Gate("policy", gateNeutral)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
