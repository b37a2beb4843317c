package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/calyx-net/calyx/internal/calc"
	"github.com/calyx-net/calyx/internal/dataplane/nft"
	"github.com/calyx-net/calyx/internal/netns"
)

const oursName = "calyx"

// ours is Calyx's side of B3: a new nft.Reconciler over a netlink
// socket in the namespace, applying the full state, then calc's delta of
// each change.
func ours() impl {
	return impl{name: oursName, who: "calyx (nft.Reconciler in-process over netlink)",
		session: func(ctx context.Context, n *netNS, pr *prepared) (func() error, func(change) error, error) {
			k, err := ourKernel(n)
			if err != nil {
				return nil, nil, err
			}
			// The kernel outlives the session: closed with the namespace.
			n.onClose(func() error { return k.Close() })
			r := nft.New(k, nft.Options{})
			full := func() error { return r.Apply(ctx, pr.state, fullDelta(pr.state)) }
			apply := func(ch change) error { return r.Apply(ctx, ch.state, ch.delta) }
			return full, apply, nil
		}}
}

// ourKernel opens Calyx's netlink kernel in n.
func ourKernel(n *netNS) (*nft.Netlink, error) {
	h, err := netns.Open("/run/netns/" + n.name)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", n.name, err)
	}
	k, err := nft.NewNetlink(h)
	if cerr := h.Close(); err == nil && cerr != nil {
		_ = k.Close()
		return nil, fmt.Errorf("closing namespace handle %s: %w", n.name, cerr)
	}
	return k, err
}

// fullDelta names every object of s: a full programming.
func fullDelta(s *calc.State) calc.Delta {
	d := calc.Delta{Endpoints: sortedKeys(s.Endpoints), HostEndpoints: sortedKeys(s.HostEndpoints),
		Chains: sortedKeys(s.Chains), Sets: sortedKeys(s.Sets), Config: true}
	return d
}

// loadOurs programs s into Calyx's table in n (B4) and returns the
// function that removes the table again.
func loadOurs(ctx context.Context, n *netNS, s *calc.State) (func() error, error) {
	k, err := ourKernel(n)
	if err != nil {
		return nil, err
	}
	if err := nft.New(k, nft.Options{}).Apply(ctx, s, fullDelta(s)); err != nil {
		return nil, errors.Join(fmt.Errorf("programming Calyx's ruleset: %w", err), k.Close())
	}
	return func() error {
		err := n.run(ctx, "", "nft", "delete", "table", "inet", nft.DefaultTable)
		return errors.Join(err, k.Close())
	}, nil
}
