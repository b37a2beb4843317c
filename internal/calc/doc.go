// Package calc computes the desired dataplane of one host from the
// datastore's resources: the local workload endpoints with their routes
// and ordered policies, the rule programs of the policies and profiles in
// use, the address sets their selectors, nets and named ports stand for,
// and the host-wide settings (NAT, failsafes, workload-to-host traffic).
//
// Why it is pure. The reconcile loop is the only writer of the kernel;
// calc is the only place that decides what the kernel should hold. Keeping
// it free of I/O makes the policy semantics (calico-design.md §6) testable
// as tables of resources and expected states, lets `calyxctl policy trace`
// interpret exactly the state the agent programs, and makes the result a
// function of the resources alone: the same snapshot gives the same State
// whatever order the events arrived in.
//
// How: the reconcile loop feeds a Calc with Replace (a full snapshot, at
// start and after a watch resync) and Update (one resource change at a
// time), reads State, and hands TakeDelta's names to the reconcilers. A
// change recomputes only what depends on it (see calc.go), so one edit in
// a cluster of thousands of policies and endpoints costs microseconds to
// a fraction of a millisecond rather than a rebuild. Rules that cannot be
// enforced in the kernel (application-layer, service-account and namespace
// matches) and input the datastore should have refused never panic and
// fail closed (see rules.go). State.Verdict interprets a State the way the
// nftables renderer programs it, and Trace builds the State of each node a
// packet crosses from the same resources, for `calyxctl policy trace`.
package calc
