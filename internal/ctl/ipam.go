package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/ipam"
)

// ipamCommand is `calyxctl ipam`: utilisation, release and the leak
// check. It works on etcd directly, like every other command, so it also
// repairs a cluster whose calyx-nodes are down.
func (c *cli) ipamCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "Show, release and check IP address assignments",
	}
	cmd.AddCommand(c.ipamShowCommand(), c.ipamReleaseCommand(), c.ipamCheckCommand())
	return cmd
}

func (c *cli) ipamShowCommand() *cobra.Command {
	var ip string
	var blocks bool
	cmd := &cobra.Command{
		Use:   "show [--ip IP] [--blocks]",
		Short: "Show utilisation per pool and per node, or who owns an address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var addr netip.Addr
			if ip != "" {
				var err error
				if addr, err = netip.ParseAddr(ip); err != nil {
					return fmt.Errorf("--ip %q: not an IP address", ip)
				}
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				a := ipam.New(s)
				if addr.IsValid() {
					as, err := a.GetAssignment(ctx, addr)
					if err != nil {
						return err
					}
					printAssignment(c.opts.Out, as)
					return nil
				}
				u, err := a.Usage(ctx)
				if err != nil {
					return err
				}
				return printUsage(c.opts.Out, u, blocks)
			})
		},
	}
	cmd.Flags().StringVar(&ip, "ip", "", "show who owns this address")
	cmd.Flags().BoolVar(&blocks, "blocks", false, "also list every block")
	return cmd
}

func printAssignment(w io.Writer, as ipam.Assignment) {
	where := fmt.Sprintf("IP pool %q (%s)", as.Pool, as.PoolCIDR)
	if as.Block.IsValid() {
		owner := "no node"
		if as.Node != "" {
			owner = "node " + as.Node
		}
		where += fmt.Sprintf(", block %s affine to %s", as.Block, owner)
	} else {
		where += ", in no block yet"
	}
	if !as.Allocated {
		fmt.Fprintf(w, "%s is not assigned\n  %s\n", as.IP, where)
		return
	}
	attrs := make([]string, 0, len(as.Attrs))
	for _, k := range slices.Sorted(maps.Keys(as.Attrs)) {
		attrs = append(attrs, k+"="+as.Attrs[k])
	}
	fmt.Fprintf(w, "%s is assigned to handle %q (%s)\n  %s\n", as.IP, as.Handle, strings.Join(attrs, ", "), where)
}

func printUsage(w io.Writer, u ipam.Usage, blocks bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "IP POOL\tCIDR\tBLOCKSIZE\tBLOCKS\tIN USE\tIN BLOCKS\tSIZE\tUSED\tDISABLED")
	for _, p := range u.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%v\n", p.Name, p.CIDR, p.BlockSize, p.Blocks, p.InUse, p.Capacity,
			sizeText(p.Size), percent(p.InUse, p.Size), p.Disabled)
	}
	if len(u.Pools) == 0 {
		fmt.Fprintln(tw, "(no IP pools)")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tBLOCKS\tIN USE\tIN BLOCKS\tBORROWED")
	for _, n := range u.Nodes {
		name := n.Node
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", name, n.Blocks, n.InUse, n.Capacity, n.Borrowed)
	}
	if len(u.Nodes) == 0 {
		fmt.Fprintln(tw, "(no node holds a block)")
	}
	if blocks {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "BLOCK\tIP POOL\tNODE\tIN USE\tSIZE")
		for _, b := range u.Blocks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", b.CIDR, orDash(b.Pool), orDash(b.Node), b.InUse, b.Size)
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sizeText prints a pool size, as a power of two when it is huge.
func sizeText(n *big.Int) string {
	if n.BitLen() <= 32 {
		return n.String()
	}
	return "2^" + strconv.Itoa(n.BitLen()-1)
}

func percent(inUse int, size *big.Int) string {
	f, _ := new(big.Rat).SetFrac(big.NewInt(int64(inUse)*100), size).Float64()
	return strconv.FormatFloat(f, 'f', 1, 64) + "%"
}

func (c *cli) ipamReleaseCommand() *cobra.Command {
	var ips []string
	cmd := &cobra.Command{
		Use:   "release --ip IP [--ip IP...]",
		Short: "Release addresses, whoever holds them",
		Long: `Release addresses, whoever holds them, in one transaction with their
handles' records. An address that was not assigned is reported and makes
the command fail (after the others are released).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ips) == 0 {
				return errors.New("give --ip IP (repeatable)")
			}
			var addrs []netip.Addr
			for _, s := range ips {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--ip %q: not an IP address", s)
				}
				addrs = append(addrs, a)
			}
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				unallocated, err := ipam.New(s).ReleaseIPs(ctx, addrs...)
				if err != nil {
					return err
				}
				for _, a := range addrs {
					if !slices.Contains(unallocated, a.Unmap()) {
						fmt.Fprintf(c.opts.Out, "released %s\n", a)
					}
				}
				if len(unallocated) > 0 {
					texts := make([]string, len(unallocated))
					for i, a := range unallocated {
						texts[i] = a.String()
					}
					return fmt.Errorf("not assigned, nothing to release: %s", strings.Join(texts, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&ips, "ip", nil, "address to release (repeatable)")
	return cmd
}

func (c *cli) ipamCheckCommand() *cobra.Command {
	var fix, yes bool
	cmd := &cobra.Command{
		Use:   "check [--fix [-y]]",
		Short: "Find leaked, unallocated, doubly owned and orphaned addresses",
		Long: `Compare every IPAM block, handle and affinity with the WorkloadEndpoints
and Nodes and report: addresses allocated that no endpoint uses, addresses
endpoints use that are not allocated, addresses with two owners, handle
records out of step with the blocks (handles with no address), blocks
affine to a node that no longer exists, and affinity records out of step
with their blocks.

With --fix, repair them after asking on standard input (-y: without
asking). Each repair is guarded by what the check saw: anything that changed
meanwhile is left alone and listed. Addresses with two owners are never
changed: decide which owner is right and delete the other.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, s store) error {
				a := ipam.New(s)
				r, err := a.Check(ctx)
				if err != nil {
					return err
				}
				printReport(c.opts.Out, r)
				if !fix || r.Problems() == 0 {
					return nil
				}
				if !yes && !confirm(c.opts.In, c.opts.Out, fmt.Sprintf("Fix these %d problems? [y/N]: ", r.Problems())) {
					fmt.Fprintln(c.opts.Out, "nothing changed")
					return nil
				}
				res, err := a.Fix(ctx, r)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.opts.Out, "fixed %d problems\n", res.Fixed)
				for _, s := range res.Skipped {
					fmt.Fprintf(c.opts.Out, "left alone: %s\n", s)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "repair the problems found (asks first)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "with --fix, do not ask")
	return cmd
}

// confirm asks a yes/no question on in; only "y" or "yes" is yes.
func confirm(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprint(out, question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func printReport(w io.Writer, r ipam.Report) {
	section := func(title string, n int) {
		fmt.Fprintf(w, "%s: %d\n", title, n)
	}
	section("Addresses allocated but not used by any endpoint (leaked)", len(r.Leaked))
	for _, l := range r.Leaked {
		fmt.Fprintf(w, "  %s handle %q node %q block %s\n", l.IP, l.Handle, l.Node, l.Block)
	}
	section("Addresses used by endpoints but not allocated", len(r.Unallocated))
	for _, u := range r.Unallocated {
		pool := "outside every IP pool"
		if u.Pool != "" {
			pool = "in IP pool " + strconv.Quote(u.Pool)
		}
		fmt.Fprintf(w, "  %s endpoint %q node %q (%s)\n", u.IP, u.Endpoint, u.Node, pool)
	}
	section("Addresses with more than one owner", len(r.Conflicts))
	for _, cf := range r.Conflicts {
		fmt.Fprintf(w, "  %s: %s\n", cf.IP, strings.Join(cf.Owners, ", "))
	}
	section("Handles out of step with the blocks", len(r.Handles))
	for _, h := range r.Handles {
		switch {
		case len(h.Actual) == 0:
			fmt.Fprintf(w, "  handle %q holds no address (record says %v)\n", h.Handle, h.Recorded)
		case h.Recorded == nil:
			fmt.Fprintf(w, "  handle %q has no record (blocks say %v)\n", h.Handle, h.Actual)
		default:
			fmt.Fprintf(w, "  handle %q records %v, blocks say %v\n", h.Handle, h.Recorded, h.Actual)
		}
	}
	section("Blocks affine to a node that no longer exists", len(r.Orphans))
	for _, o := range r.Orphans {
		fmt.Fprintf(w, "  %s node %q (%d addresses in use)\n", o.Block, o.Node, o.InUse)
	}
	section("Affinity records out of step with their blocks", len(r.Affinities))
	for _, af := range r.Affinities {
		fmt.Fprintf(w, "  %s node %q: %s\n", af.Block, af.Node, af.Problem)
	}
	if n := len(r.PluginHeld); n > 0 {
		fmt.Fprintf(w, "(%d addresses are held by calyx-ipam under other CNI plugins, with no endpoint by design; not problems)\n", n)
	}
	if r.Problems() == 0 {
		fmt.Fprintln(w, "no problems found")
	} else {
		fmt.Fprintf(w, "%d problems found\n", r.Problems())
	}
}

// checkIPAMDeletes refuses to delete an IPPool that still has allocated
// addresses, saying how many and on which nodes. Hosts' VXLAN tunnel
// addresses do not count: each calyx-node releases its own once no VXLAN
// pool selects it.
func checkIPAMDeletes(ctx context.Context, s store, doomed []api.Resource) error {
	var pools []*api.IPPool
	for _, r := range doomed {
		if p, ok := r.(*api.IPPool); ok {
			pools = append(pools, p)
		}
	}
	if len(pools) == 0 {
		return nil
	}
	u, err := ipam.New(s).Usage(ctx)
	if err != nil {
		return err
	}
	var msgs []string
	for _, p := range pools {
		perNode := map[string]int{}
		total := 0
		for _, b := range u.Blocks {
			if n := b.InUse - b.Tunnel; b.Pool == p.Metadata.Name && n > 0 {
				perNode[orNone(b.Node)] += n
				total += n
			}
		}
		if total == 0 {
			continue
		}
		var where []string
		for _, n := range slices.Sorted(maps.Keys(perNode)) {
			where = append(where, fmt.Sprintf("%s: %d", n, perNode[n]))
		}
		msgs = append(msgs, fmt.Sprintf("IPPool %q (%s) still has %d allocated addresses (%s)",
			p.Metadata.Name, p.Spec.CIDR, total, strings.Join(where, ", ")))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("nothing was deleted: %s; release them first (calyxctl ipam release, or delete their workloads), or set spec.disabled: true to stop new allocations",
			strings.Join(msgs, "; "))
	}
	return nil
}

func orNone(n string) string {
	if n == "" {
		return "no node"
	}
	return n
}

// afterIPAMDeletes cleans IPAM up after resources were deleted: a deleted
// Node's blocks are released (and with releaseIPs its addresses), a
// deleted IPPool's empty blocks are removed.
func (c *cli) afterIPAMDeletes(ctx context.Context, s store, deleted []api.Resource, releaseIPs bool) error {
	a := ipam.New(s)
	for _, r := range deleted {
		switch r := r.(type) {
		case *api.Node:
			rel, err := a.ReleaseHostAffinities(ctx, r.Metadata.Name, releaseIPs)
			if err != nil {
				return fmt.Errorf("node %q was deleted, but releasing its blocks failed (run calyxctl ipam check --fix): %w", r.Metadata.Name, err)
			}
			fmt.Fprintf(c.opts.Out, "node/%s: released %d blocks (%d deleted, %d kept with their addresses), %d addresses\n",
				r.Metadata.Name, rel.Blocks, rel.Deleted, rel.Blocks-rel.Deleted, rel.Addresses)
		case *api.IPPool:
			cidr, err := netip.ParsePrefix(r.Spec.CIDR)
			if err != nil {
				continue
			}
			if _, _, err := a.ReleasePoolAffinities(ctx, cidr); err != nil {
				return fmt.Errorf("IP pool %q was deleted, but removing its empty blocks failed (run calyxctl ipam check --fix): %w", r.Metadata.Name, err)
			}
		}
	}
	return nil
}
