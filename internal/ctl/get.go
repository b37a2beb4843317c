package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/selector"
)

func (c *cli) getCommand() *cobra.Command {
	var output, sel string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "Show resources",
		Long: `Show resources of one kind, all of them or those named.

Output formats: table (default), wide, yaml, json. What -o yaml or -o json
prints can be given back to apply unchanged.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			switch output {
			case "table", "wide", "yaml", "json":
			default:
				return fmt.Errorf("-o %q: expected table, wide, yaml or json", output)
			}
			var s *selector.Selector
			if sel != "" {
				if s, err = selector.Parse(sel); err != nil {
					return fmt.Errorf("--selector: %w", err)
				}
			}
			return c.withStore(cmd, func(ctx context.Context, st store) error {
				rs, err := fetch(ctx, st, kind, args[1:], s)
				if err != nil {
					return err
				}
				return c.print(kind, rs, output, len(args) > 1)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, yaml or json")
	cmd.Flags().StringVarP(&sel, "selector", "l", "", "only resources whose labels match this selector, e.g. 'role == \"db\"'")
	return cmd
}

// fetch returns the named resources (in the order named) or, with no
// names, every resource of the kind that the selector matches.
func fetch(ctx context.Context, s store, kind api.KindInfo, names []string, sel *selector.Selector) ([]api.Resource, error) {
	if len(names) == 0 {
		rs, _, err := s.List(ctx, kind, sel)
		return rs, err
	}
	var out []api.Resource
	var missing []string
	for _, n := range names {
		r, err := s.Get(ctx, kind, n)
		if datastore.IsNotFound(err) {
			missing = append(missing, fmt.Sprintf("%q", n))
			continue
		}
		if err != nil {
			return nil, err
		}
		if sel == nil || sel.Evaluate(r.GetObjectMeta().Labels) {
			out = append(out, r)
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("%s %s not found", kind.Kind, strings.Join(missing, ", "))
	}
	return out, nil
}

func (c *cli) print(kind api.KindInfo, rs []api.Resource, output string, named bool) error {
	switch output {
	case "yaml", "json":
		if len(rs) == 0 && named {
			return nil
		}
		enc := api.EncodeYAML
		if output == "json" {
			enc = api.EncodeJSON
		}
		b, err := enc(rs)
		if err != nil {
			return err
		}
		_, err = c.opts.Out.Write(b)
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintf(c.opts.Err, "no %s found\n", kind.Plural)
		return nil
	}
	return writeTable(c.opts.Out, kind, rs, output == "wide")
}
