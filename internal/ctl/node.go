package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/localapi"
)

func (c *cli) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Inspect the calyx-node of this host",
	}
	cmd.AddCommand(c.nodeStatusCommand())
	return cmd
}

func (c *cli) nodeStatusCommand() *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "status [--socket PATH] [-o json]",
		Short: "Show this host's BGP sessions, VXLAN peers, routes, endpoints and datastore sync",
		Long: `status asks the calyx-node of this host, over its local API socket, what it
programs: its datastore sync state, its BGP sessions, its VXLAN devices and
peers, its routes to other hosts' blocks and its local endpoints. It needs no
datastore settings; run it as root on the host (the socket is root's).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("--output %q: expected json or nothing", output)
			}
			var st localapi.NodeStatusResponse
			if err := localapi.NewClient(socket).Do(cmd.Context(), localapi.PathNodeStatus, struct{}{}, &st); err != nil {
				return fmt.Errorf("asking calyx-node at %s: %w", socket, err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			writeNodeStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", localapi.DefaultSocket, "calyx-node's local API socket")
	cmd.Flags().StringVarP(&output, "output", "o", "", "json: print the answer as JSON")
	return cmd
}

// writeNodeStatus prints a node status as sections of aligned tables.
func writeNodeStatus(w io.Writer, st localapi.NodeStatusResponse, now time.Time) {
	state := "ready"
	if !st.Ready {
		state = "not ready: " + st.Message
	}
	fmt.Fprintf(w, "calyx-node %s: %s\n", st.Node, state)
	sync := "in sync"
	if !st.Datastore.InSync {
		sync = "NOT in sync"
	}
	since := "never"
	if !st.Datastore.LastUpdate.IsZero() {
		since = now.Sub(st.Datastore.LastUpdate).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(w, "datastore: %s, revision %d, last change %s\n", sync, st.Datastore.Revision, since)
	if st.RoutingError != "" {
		fmt.Fprintf(w, "routing: FAILING: %s\n", st.RoutingError)
	}

	fmt.Fprintln(w, "\nBGP sessions:")
	if len(st.BGP) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		table(w, []string{"PEER", "TYPE", "STATE", "SINCE", "RECEIVED", "ADVERTISED"}, func(row func(...string)) {
			for _, p := range st.BGP {
				row(p.Peer, p.Type, p.State, p.Since.Format(time.RFC3339), fmt.Sprint(p.Received), fmt.Sprint(p.Advertised))
			}
		})
	}

	fmt.Fprintln(w, "\nVXLAN:")
	if len(st.VXLAN) == 0 {
		fmt.Fprintln(w, "  none (no pool of this host asks for VXLAN)")
	}
	for _, v := range st.VXLAN {
		fmt.Fprintf(w, "  %s: address %s, underlay %s, vni %d, %d peers\n", v.Device, v.Address, v.Underlay, v.VNI, len(v.Peers))
		if len(v.Peers) > 0 {
			table(w, []string{"PEER", "ADDRESS", "MAC", "UNDERLAY"}, func(row func(...string)) {
				for _, p := range v.Peers {
					row(p.Node, p.Address, p.MAC, p.Underlay)
				}
			})
		}
	}

	fmt.Fprintln(w, "\nRoutes to other hosts:")
	if len(st.Routes) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		table(w, []string{"DESTINATION", "KIND", "NODE", "VIA", "DEVICE"}, func(row func(...string)) {
			for _, r := range st.Routes {
				row(r.Destination, r.Kind, r.Node, orDash(r.Via), orDash(r.Device))
			}
		})
	}

	fmt.Fprintln(w, "\nLocal endpoints:")
	if len(st.Endpoints) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		table(w, []string{"NAME", "INTERFACE", "ADDRESSES"}, func(row func(...string)) {
			for _, e := range st.Endpoints {
				row(e.Name, e.Interface, strings.Join(e.Addresses, ","))
			}
		})
	}
}

// table prints an indented, aligned table.
func table(w io.Writer, header []string, rows func(row func(...string))) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
	rows(func(cells ...string) { fmt.Fprintln(tw, "  "+strings.Join(cells, "\t")) })
	_ = tw.Flush()
}
