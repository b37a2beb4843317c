// Package datastore keeps Calyx's resources in etcd, the one source of truth
// every calyx-node and calyxctl shares.
//
// Why: several writers (calyxctl, the agents on every host, the IPAM
// allocator) change the same keys concurrently, and every agent must hold an
// exact, current copy of what is stored without re-reading it all the time.
// etcd gives both halves: compare-and-swap transactions on per-key revisions
// (so no write silently overwrites a newer one) and watches that resume from a
// revision (so a reader that has listed at revision R sees every later change
// exactly once, in order). This package is the only one that imports the etcd
// client; everything above it sees typed resources, sentinel predicates
// (IsNotFound, IsConflict, IsAlreadyExists, IsUnreachable, IsNoLeader,
// IsUnavailable), a health monitor and a syncer.
//
// How, in short:
//
//   - Layout. A resource lives at /calyx/v1/<lower-case kind>/<name>, e.g.
//     /calyx/v1/ippool/pool-a, as the JSON of api.MarshalStored. Its
//     metadata.resourceVersion is the key's etcd ModRevision, filled in on
//     every read and never stored; uid and creationTimestamp are assigned on
//     create and preserved by update and apply. Raw keys for IPAM live under
//     /calyx/ipam/v1/ (IPAMPrefix) and are read and written with GetRaw,
//     ListRaw and CAS.
//   - Writes are single etcd transactions guarded the way Calico guards them:
//     Create by Version(key)==0, Update and guarded Delete by
//     ModRevision(key)==resourceVersion. Apply is an upsert: it first tries
//     to create (one round trip for a new key) and otherwise re-reads and
//     retries the CAS a bounded number of times. Batch puts every guard of
//     several operations in one transaction's If and every write in its Then,
//     so a batch is written entirely or not at all. Create, Update and Apply
//     calls made at the same time by several goroutines share transactions
//     (group commit, group.go): each keeps its own guard and its own
//     outcome, and a lone call is sent at once.
//   - The Syncer delivers one consistent Snapshot (a single read at one
//     revision) and then every change as an Event in revision order from a
//     watch started at the snapshot's revision+1. When the watch cannot
//     continue (compaction, etcd restart, lost leader) it lists again and
//     delivers only the difference from what the handler already holds, so
//     the handler never starts over.
//   - Health. A request to an etcd that is down does not fail: the client
//     waits for a connection, and a member without a leader holds
//     linearizable requests. So MonitorHealth checks every second (one
//     serializable read that requires a leader; when it fails, a status
//     request to every member) and Health says whether etcd is available,
//     unreachable (no member answers) or without a leader (members answer,
//     none knows a leader). Callers fail fast on it, the Syncer reports
//     itself out of sync, and a request that ran out of time is given its
//     error.
//   - StartEmbedded runs a single-member etcd in-process, so one host works
//     out of the box; it serves only TLS and requires a client certificate
//     on both its client and peer ports (internal/pki makes the files). Its
//     and the client's zap logging are routed into the injected slog logger
//     at warn (server) and error (client) level.
//   - Resolve is the one place flags, CALYX_ETCD_* variables and
//     calyxctl.yaml become a Config, with the same precedence in every
//     binary.
//
// Validation is the caller's job: the datastore stores what it is given
// (refusing only what would break the key layout, such as an empty name).
package datastore
