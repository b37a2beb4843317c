package ctl

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/datastore"
)

// serverVersioner is the optional part of a store that can say which etcd
// it talks to; the real datastore has it, test fakes need not.
type serverVersioner interface {
	ServerVersion(context.Context) (string, error)
}

var _ serverVersioner = (*datastore.Client)(nil)

func (c *cli) versionCommand() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print calyxctl's version and, if reachable, the datastore's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(c.opts.Out, "Client Version:   %s\nGo Version:       %s\n", c.opts.Version, runtime.Version())
			if clientOnly {
				return nil
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				v, ok := s.(serverVersioner)
				if !ok {
					return nil
				}
				sv, err := v.ServerVersion(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.opts.Out, "etcd Version:     %s\n", sv)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the client version, do not contact etcd")
	return cmd
}
