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
package calc
