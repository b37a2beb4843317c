// Package testnet provides multi-host test topologies and embedded etcd for
// tests.
//
// Why: Calyx's tests use real peers rather than mocks wherever a user would
// meet one, and etcd is the first of them. Every test that needs a
// datastore gets its own in-process etcd on free loopback ports with its
// data in t.TempDir(), so tests run in parallel, need no root and leave
// nothing behind. TestMain functions wrap m.Run with VerifyNoLeaks, so a
// goroutine left running by a syncer, watcher or server fails the package.
//
// It is also the one home of the helpers every test package shares:
// Logger (slog into t.Log), WaitFor (poll until a condition holds),
// FreePorts, IPPool (a pool fixture) and RequireRoot, which kernel tests
// call so that a run without root lists them as skipped.
package testnet
