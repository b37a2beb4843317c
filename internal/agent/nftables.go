package agent

import (
	"fmt"
	"log/slog"

	"github.com/calyx-net/calyx/internal/dataplane/nft"
	"github.com/calyx-net/calyx/internal/netns"
)

var _ policyDataplane = (*nft.Reconciler)(nil)

// newNftables returns the nftables reconciler of the namespace ns, and a
// function that closes its netlink socket.
func newNftables(ns *netns.NS, log *slog.Logger) (*nft.Reconciler, func(), error) {
	k, err := nft.NewNetlink(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("opening nftables in the host namespace: %w", err)
	}
	return nft.New(k, nft.Options{Logger: log}), func() { _ = k.Close() }, nil
}
