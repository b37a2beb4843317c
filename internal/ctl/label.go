package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// labelChange is what one label command asks for.
type labelChange struct {
	set       map[string]string
	remove    []string
	overwrite bool
}

func (c *cli) labelCommand() *cobra.Command {
	var ch labelChange
	cmd := &cobra.Command{
		Use:   "label KIND NAME [KEY=VALUE...] [--remove KEY...]",
		Short: "Add, change or remove labels of a resource",
		Long: `Add, change or remove labels of a resource. Changing an existing label's
value needs --overwrite. The update is guarded by the resource's revision
and retried if someone else changed it meanwhile.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			ch.set = map[string]string{}
			for _, kv := range args[2:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("label %q: expected KEY=VALUE", kv)
				}
				ch.set[k] = v
			}
			for _, k := range ch.remove {
				if _, both := ch.set[k]; both {
					return fmt.Errorf("label %q is both set and removed", k)
				}
			}
			if len(ch.set) == 0 && len(ch.remove) == 0 {
				return fmt.Errorf("nothing to do: give KEY=VALUE arguments or --remove KEY")
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				return c.label(ctx, s, kind, args[1], ch)
			})
		},
	}
	cmd.Flags().StringArrayVar(&ch.remove, "remove", nil, "label key to remove (repeatable)")
	cmd.Flags().BoolVar(&ch.overwrite, "overwrite", false, "allow changing the value of an existing label")
	return cmd
}

func (c *cli) label(ctx context.Context, s store, kind api.KindInfo, name string, ch labelChange) error {
	const attempts = 5
	for i := 0; ; i++ {
		r, err := s.Get(ctx, kind, name)
		if err != nil {
			return err
		}
		m := r.GetObjectMeta()
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		for k, v := range ch.set {
			if old, ok := m.Labels[k]; ok && old != v && !ch.overwrite {
				return fmt.Errorf("%s %q already has label %s=%s; use --overwrite to change it", kind.Kind, name, k, old)
			}
			m.Labels[k] = v
		}
		for _, k := range ch.remove {
			if _, ok := m.Labels[k]; !ok {
				return fmt.Errorf("%s %q has no label %q to remove", kind.Kind, name, k)
			}
			delete(m.Labels, k)
		}
		if err := r.Validate(); err != nil {
			return err
		}
		_, err = s.Update(ctx, r)
		if datastore.IsConflict(err) && i < attempts {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.opts.Out, "%s/%s labeled\n", strings.ToLower(kind.Kind), name)
		return nil
	}
}
