package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// writeMode is one of the commands that write resources from files.
type writeMode struct {
	verb, past string
	action     datastore.OpAction
	short      string
}

var (
	writeCreate  = writeMode{"create", "created", datastore.OpCreate, "Create resources from files; fails if any already exists"}
	writeApply   = writeMode{"apply", "applied", datastore.OpApply, "Create or update resources from files; resources equal to their stored copy are left alone"}
	writeReplace = writeMode{"replace", "replaced", datastore.OpUpdate, "Replace existing resources from files; fails if any does not exist"}
)

func (c *cli) writeCommand(m writeMode) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   m.verb + " -f FILE|DIR|-",
		Short: m.short,
		Long: m.short + `.

Every document in every file is decoded and validated before anything is
written; then all of them are written in one transaction, so either all
succeed or nothing changes. calyx.dev/v1 and projectcalico.org/v3 documents
are accepted; one command reads at most 2048 resources (etcd's limit on one
transaction). apply prints created, configured or unchanged for each
resource, and does not write one that equals its stored copy, so that
"calyxctl get -o yaml | calyxctl apply -f -" changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := loadPaths(files, c.opts.In)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				return c.write(ctx, s, m, items)
			})
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	return cmd
}

func (c *cli) write(ctx context.Context, s store, m writeMode, items []sourced) error {
	if err := checkPools(ctx, s, items); err != nil {
		return err
	}
	// What apply prints for each item, as kubectl does: created,
	// configured, or unchanged for one equal to its stored copy, which is
	// not written at all (a write would change its resourceVersion and
	// make every agent recompute).
	outcome := make([]string, len(items))
	if m.action == datastore.OpApply {
		stored, err := storedCopies(ctx, s, items)
		if err != nil {
			return err
		}
		for i, it := range items {
			switch {
			case stored[i] == nil:
				outcome[i] = "created"
			case sameContent(stored[i], it.resource):
				outcome[i] = "unchanged"
			default:
				outcome[i] = "configured"
			}
		}
	}
	ops := make([]datastore.Op, 0, len(items))
	for i, it := range items {
		if outcome[i] == "unchanged" {
			continue
		}
		r := it.resource
		switch m.action {
		case datastore.OpApply, datastore.OpCreate:
			// What "get -o yaml" printed applies back: its revision is
			// information, not a guard.
			r.GetObjectMeta().ResourceVersion = ""
		case datastore.OpUpdate:
			if r.GetObjectMeta().ResourceVersion == "" {
				kind, _ := api.LookupKind(r.GetKind())
				cur, err := s.Get(ctx, kind, r.GetObjectMeta().Name)
				if datastore.IsNotFound(err) {
					return fmt.Errorf("%s: does not exist; use create or apply", it)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", it, err)
				}
				r.GetObjectMeta().ResourceVersion = cur.GetObjectMeta().ResourceVersion
			}
		}
		ops = append(ops, datastore.Op{Action: m.action, Resource: r})
	}
	if len(ops) > 0 {
		if _, err := s.Batch(ctx, ops); err != nil {
			return fmt.Errorf("nothing was %s: %w", m.past, err)
		}
	}
	for i, it := range items {
		past := m.past
		if outcome[i] != "" {
			past = outcome[i]
		}
		fmt.Fprintf(c.opts.Out, "%s/%s %s\n", strings.ToLower(it.resource.GetKind()), it.resource.GetObjectMeta().Name, past)
	}
	return nil
}

// getPerKind is how many resources of one kind storedCopies reads one by
// one; for more, it lists the kind.
const getPerKind = 16

// storedCopies returns the stored copy of each item, or nil where there
// is none.
func storedCopies(ctx context.Context, s store, items []sourced) ([]api.Resource, error) {
	byKind := map[string][]int{}
	var kinds []string
	for i, it := range items {
		k := it.resource.GetKind()
		if byKind[k] == nil {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], i)
	}
	out := make([]api.Resource, len(items))
	for _, k := range kinds {
		kind, _ := api.LookupKind(k)
		idx := byKind[k]
		if len(idx) <= getPerKind {
			for _, i := range idx {
				cur, err := s.Get(ctx, kind, items[i].resource.GetObjectMeta().Name)
				if datastore.IsNotFound(err) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("%s: reading the stored copy: %w", items[i], err)
				}
				out[i] = cur
			}
			continue
		}
		all, _, err := s.List(ctx, kind, nil)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", kind.Plural, err)
		}
		byName := make(map[string]api.Resource, len(all))
		for _, r := range all {
			byName[r.GetObjectMeta().Name] = r
		}
		for _, i := range idx {
			out[i] = byName[items[i].resource.GetObjectMeta().Name]
		}
	}
	return out, nil
}

// sameContent tells whether two resources are equal apart from the
// metadata the datastore sets (resourceVersion, uid, creationTimestamp),
// which apply keeps from the stored copy.
func sameContent(stored, in api.Resource) bool {
	a, errA := content(stored)
	b, errB := content(in)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// content encodes a resource without its server-set metadata.
func content(r api.Resource) ([]byte, error) {
	c := r.DeepCopyResource()
	*c.GetTypeMeta() = api.TypeMeta{Kind: r.GetKind(), APIVersion: api.APIVersion}
	m := c.GetObjectMeta()
	m.ResourceVersion, m.UID, m.CreationTimestamp = "", "", ""
	return json.Marshal(c)
}

// checkPools refuses pools that would overlap each other or a stored pool.
func checkPools(ctx context.Context, s store, items []sourced) error {
	incoming := map[string]*api.IPPool{}
	for _, it := range items {
		if p, ok := it.resource.(*api.IPPool); ok {
			incoming[p.Metadata.Name] = p
		}
	}
	if len(incoming) == 0 {
		return nil
	}
	kind, _ := api.LookupKind(api.KindIPPool)
	stored, _, err := s.List(ctx, kind, nil)
	if err != nil {
		return fmt.Errorf("listing IP pools: %w", err)
	}
	var all []*api.IPPool
	for _, r := range stored {
		p := r.(*api.IPPool)
		if in := incoming[p.Metadata.Name]; in != nil {
			if err := poolGeometryKept(p, in); err != nil {
				return fmt.Errorf("%s: %w", sourceOf(items, in), err)
			}
			continue
		}
		all = append(all, p)
	}
	from := map[string]sourced{}
	for _, it := range items {
		if p, ok := it.resource.(*api.IPPool); ok {
			all = append(all, p)
			from[p.Metadata.Name] = it
		}
	}
	err = api.ValidatePools(all)
	if err == nil {
		return nil
	}
	// Name the file and document of each incoming pool at fault.
	var msgs []string
	for _, e := range unjoin(err) {
		var v *api.ValidationError
		if errors.As(e, &v) {
			if it, ok := from[v.Name]; ok {
				parts := make([]string, len(v.Fields))
				for i, f := range v.Fields {
					parts[i] = f.Error()
				}
				msgs = append(msgs, fmt.Sprintf("%s: %s", it, strings.Join(parts, "; ")))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// poolGeometryKept refuses to change a stored pool's CIDR or block size:
// existing blocks and allocations were cut from them, and IPAM finds an
// address's block from the pool's geometry, so changing either would strand
// allocations and could hand an address out twice (Calico refuses it too).
func poolGeometryKept(stored, in *api.IPPool) error {
	oldCIDR, err1 := netip.ParsePrefix(stored.Spec.CIDR)
	newCIDR, err2 := netip.ParsePrefix(in.Spec.CIDR)
	if err1 == nil && err2 == nil && oldCIDR.Masked() != newCIDR.Masked() {
		return fmt.Errorf("spec.cidr: cannot change %s to %s: a pool's CIDR is fixed once created; create a new pool, disable this one and delete it once its addresses are released", stored.Spec.CIDR, in.Spec.CIDR)
	}
	if stored.Spec.BlockSize != in.Spec.BlockSize {
		return fmt.Errorf("spec.blockSize: cannot change %d to %d: a pool's block size is fixed once created; create a new pool instead", stored.Spec.BlockSize, in.Spec.BlockSize)
	}
	return nil
}

// sourceOf finds where an incoming resource came from.
func sourceOf(items []sourced, r api.Resource) sourced {
	for _, it := range items {
		if it.resource == r {
			return it
		}
	}
	return sourced{file: "<input>", resource: r}
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (c *cli) deleteCommand() *cobra.Command {
	var files []string
	var ignoreNotFound, releaseIPs bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR|- | KIND NAME...)",
		Short: "Delete resources named in files or on the command line",
		Long: `Delete resources named in files or on the command line, all in one
transaction: if one is missing, nothing is deleted (unless --ignore-not-found).

Deleting a Node also releases the IPAM blocks affine to it (blocks still in
use keep their addresses and belong to no node; with --release-ips their
addresses are released too). Deleting an IPPool that still has allocated
addresses is refused.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var targets []api.Resource
			switch {
			case len(files) > 0 && len(args) > 0:
				return fmt.Errorf("give either -f FILE or KIND NAME..., not both")
			case len(files) > 0:
				items, err := loadPaths(files, c.opts.In)
				if err != nil {
					return err
				}
				for _, it := range items {
					targets = append(targets, it.resource)
				}
			case len(args) >= 2:
				kind, err := lookupKind(args[0])
				if err != nil {
					return err
				}
				for _, name := range args[1:] {
					r := kind.New()
					r.GetObjectMeta().Name = name
					targets = append(targets, r)
				}
			default:
				return fmt.Errorf("give -f FILE, or KIND and at least one NAME")
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				return c.delete(ctx, s, targets, ignoreNotFound, releaseIPs)
			})
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "skip resources that do not exist instead of failing")
	cmd.Flags().BoolVar(&releaseIPs, "release-ips", false, "when deleting a Node, also release the addresses in its blocks")
	return cmd
}

func (c *cli) delete(ctx context.Context, s store, targets []api.Resource, ignoreNotFound, releaseIPs bool) error {
	var ops []datastore.Op
	var missing []string
	var stored []api.Resource
	for _, r := range targets {
		kind, _ := api.LookupKind(r.GetKind())
		name := r.GetObjectMeta().Name
		cur, err := s.Get(ctx, kind, name)
		if err != nil {
			if !datastore.IsNotFound(err) {
				return err
			}
			missing = append(missing, fmt.Sprintf("%s %q", kind.Kind, name))
			continue
		}
		stored = append(stored, cur)
		target := kind.New() // a delete needs only the kind and name
		target.GetObjectMeta().Name = name
		ops = append(ops, datastore.Op{Action: datastore.OpDelete, Resource: target})
	}
	if len(missing) > 0 && !ignoreNotFound {
		return fmt.Errorf("nothing was deleted: %s not found", strings.Join(missing, ", "))
	}
	if err := checkIPAMDeletes(ctx, s, stored); err != nil {
		return err
	}
	if len(ops) > 0 {
		if _, err := s.Batch(ctx, ops); err != nil {
			return fmt.Errorf("nothing was deleted: %w", err)
		}
	}
	for _, op := range ops {
		fmt.Fprintf(c.opts.Out, "%s/%s deleted\n", strings.ToLower(op.Resource.GetKind()), op.Resource.GetObjectMeta().Name)
	}
	return c.afterIPAMDeletes(ctx, s, stored, releaseIPs)
}
