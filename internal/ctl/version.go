package ctl

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

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
				v, ok := s.(interface {
					ServerVersion(context.Context) (string, error)
				})
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
