// Package nft programs a host's network policy, port mappings and
// natOutgoing into one nftables table of Calyx's own (inet calyx), from
// the desired state calc computes.
//
// Why it looks like this. Felix (calico-design.md §6.2) reaches each
// endpoint's chain through a tree of iptables dispatch rules, keeps
// selectors in ipsets and rewrites tables with iptables-restore. Calyx
// does the same in nftables, with what nftables adds:
//   - Dispatch is one verdict-map lookup keyed by interface name
//     (`iifname vmap @wl-out`, `oifname vmap @wl-in`), so the cost per
//     packet does not grow with the number of endpoints; the dispatch
//     chain ends in drop, so an unknown calyx* interface is dropped (fail
//     closed) until its endpoint is programmed.
//   - Every selector, net list and named port is a named set (intervals
//     for addresses, ipv4_addr . inet_proto . inet_service for named
//     ports), one per calc.Set and family, shared by every rule that uses
//     it: a label change is one element op, not a rule rewrite.
//   - Every change is one netlink transaction carrying only the delta, so
//     the kernel switches from the old ruleset to the new one atomically:
//     no packet ever sees half a change, and a refused transaction leaves
//     the previous ruleset in force.
//   - Programming is in-process over netlink (google/nftables): no
//     fork/exec of nft per change.
//
// Layout (`nft list table inet calyx` shows it; every rule has a comment
// naming what it is for and a hash of its content):
//
//	filter-forward   iifname "calyx*" jump wl-out-dispatch   (egress of the source)
//	                 oifname "calyx*" jump wl-in-dispatch    (ingress of the destination)
//	filter-input     iifname "calyx*" jump wl-to-host        (egress, then EndpointToHostAction)
//	                 iifname vmap @hep-in                    (host endpoints)
//	filter-output    oifname "calyx*" return                 (host to workload: not policed)
//	                 oifname vmap @hep-out
//	nat-prerouting, nat-output    fib daddr type local dnat to l4proto . dport map @portmap4/6
//	nat-postrouting  from a natOutgoing pool to no pool: masquerade
//
// Workload-to-workload traffic on one host passes both the source's
// egress and the destination's ingress chain. A workload's dispatch
// element goes to the chain of its tier (tier-in-<hash>, tier-out-<hash>:
// one per distinct calc.Tier and direction, shared by every endpoint with
// that tier, created with its first user and deleted with its last); a
// host endpoint has chains of its own (hep-in-<if>, hep-out-<if>). Such a
// chain accepts
// established and related traffic, drops invalid, clears the two mark
// bits, then runs calc.Tier: each policy chain (policy-in-<name>, ...) in
// order, returning when one set MarkAccept; "end of tier" drops when
// policies applied and none passed (MarkPass); then the profile chains
// (profile-in-<name>, ...); then drop. Host endpoint chains accept the
// failsafe ports first. A policy rule's Allow sets MarkAccept and
// returns, Pass sets MarkPass and returns, Deny drops, Log logs with
// prefix "calyx-packet".
//
// Contract. Apply(state, delta) re-renders only the objects the delta
// names, compares them with what it last programmed and sends the
// difference: map and set elements are added and deleted one by one, a
// changed chain is flushed and refilled within the transaction, new
// objects are created before anything refers to them and old ones are
// deleted after nothing does. The Go work of an Apply follows the size of
// the change, not of the table: an address set's new members are compared
// with the programmed ones in one pass that allocates only for what
// differs, and only the intervals around the changed members are merged
// again (intervals.go); the bookkeeping of shared map elements and tier
// chains records only what the change touches. Large element lists are split into
// messages of at most 1,000 elements and 60 kB (a netlink attribute's
// length is 16 bits). If the transaction fails, the kernel keeps its
// previous ruleset, the Reconciler's memory does not advance, and the
// next Apply retries as a Resync, reading the kernel back (drift is a
// common reason for a refused transaction). Interval sets change by
// whole intervals: the kernel checks each interval element as it is
// inserted and refuses some moves of a single end. Resync(state)
// reads the table back (chains' rule comments, sets' elements) and
// repairs any difference in one transaction, without flushing the table:
// at start it adopts the table a previous calyx-node left, so
// established flows survive a restart; periodically it repairs drift;
// on an unchanged table it writes nothing. Calyx never touches any other
// table.
//
// The kernel is reached through Kernel, a two-method interface (run a
// transaction, list the table) with two implementations: Netlink, bound
// to a network namespace, and Fake, which applies transactions to an
// in-memory table, refuses what the kernel would (dangling references,
// deleting what is in use, oversized messages) and renders golden text.
// Netlink encodes its messages itself (rules' expressions with
// google/nftables' expr package), but for the creation and deletion of
// sets, which google/nftables encodes, and sends each transaction on a
// socket of its own, asking for one acknowledgement, on the last
// message: the kernel reports every refused message anyway, before that
// acknowledgement, so the outcome is as certain as with one per message
// and the replies cost one read instead of thousands; a refusal names
// the op. It reads the table back with dumps it decodes itself (one dump
// of all rules for their comments, one per set for its elements).
package nft
