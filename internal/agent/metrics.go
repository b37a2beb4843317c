package agent

import (
	"time"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are calyx-node's Prometheus metrics (prefix calyx_). They are
// registered with the registerer main passes in; with none, they are kept
// but not exported.
type metrics struct {
	cniRequests *prometheus.CounterVec   // op, result
	cniSeconds  *prometheus.HistogramVec // op
	// dockerSeconds times Docker plugin requests, by method and result.
	dockerSeconds *prometheus.HistogramVec
	allocations   *prometheus.CounterVec // family
	program       prometheus.Histogram
	apply         *prometheus.HistogramVec // pass
	gcReleased    *prometheus.CounterVec   // what
	// dataplaneFailures counts failed kernel writes by part (nftables,
	// routes).
	dataplaneFailures *prometheus.CounterVec
}

// kernelBuckets are fine buckets for kernel work: 25 µs to about 0.8 s.
func kernelBuckets() []float64 { return prometheus.ExponentialBuckets(25e-6, 2, 16) }

// newMetrics creates the metrics and registers them, with gauges reading
// the view, the syncer's status and the datastore's health, with reg (nil: not registered).
func newMetrics(reg prometheus.Registerer, v *view, status func() datastore.Status, health func() datastore.Health, now func() time.Time) (*metrics, error) {
	m := &metrics{
		cniRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calyx_cni_requests_total",
			Help: "Local API requests from the CNI plugins, by operation (add, ready, del, check, gc, ipam_add, ipam_del) and result (ok, error).",
		}, []string{"op", "result"}),
		cniSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "calyx_cni_request_seconds",
			Help:    "Time calyx-node spent answering local API requests, by operation.",
			Buckets: kernelBuckets(),
		}, []string{"op"}),
		dockerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "calyx_docker_request_seconds",
			Help:    "Time calyx-node spent answering Docker plugin requests, by method (e.g. NetworkDriver.Join) and result (ok, error).",
			Buckets: kernelBuckets(),
		}, []string{"method", "result"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calyx_ipam_allocations_total",
			Help: "Addresses this node allocated for CNI attachments, by family (ipv4, ipv6).",
		}, []string{"family"}),
		program: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "calyx_dataplane_endpoint_program_seconds",
			Help:    "How long CNI READY waited for the reconcile loop to program the endpoint's host side and policy.",
			Buckets: kernelBuckets(),
		}),
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "calyx_dataplane_apply_seconds",
			Help:    "Time of one reconcile pass (calc, nftables, routes), by pass (incremental, resync).",
			Buckets: kernelBuckets(),
		}, []string{"pass"}),
		gcReleased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calyx_gc_released_total",
			Help: "Garbage collected by calyx-node: endpoints whose veth vanished, and IPAM handles no endpoint held.",
		}, []string{"what"}),
		dataplaneFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "calyx_dataplane_failures_total",
			Help: "Failed kernel writes of the reconcile loop, by part: nftables (a transaction was refused; the previous ruleset stays in force and the loop retries with backoff) or routes.",
		}, []string{"part"}),
	}
	if reg == nil {
		return m, nil
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "calyx_local_endpoints",
			Help: "Workload endpoints on this node.",
		}, func() float64 { return float64(len(v.endpoints())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "calyx_datastore_sync_lag_seconds",
			Help: "How far the datastore syncer is behind: while it is in sync, how long the oldest of this node's writes has waited to come back through the watch; while it reconnects, the time since it last advanced.",
		}, func() float64 {
			st := status()
			if !st.InSync && !st.LastUpdate.IsZero() {
				return now().Sub(st.LastUpdate).Seconds()
			}
			return v.syncLag(now()).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "calyx_datastore_in_sync",
			Help: "1 while the datastore syncer is in sync (its watch is live and etcd available), else 0.",
		}, func() float64 {
			if status().InSync {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "calyx_datastore_reachable",
			Help: "1 while etcd answers and has a leader, 0 while the health check finds it unreachable or without a leader.",
		}, func() float64 {
			if health().Available() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range append(gauges, m.cniRequests, m.cniSeconds, m.dockerSeconds, m.allocations, m.program, m.apply, m.gcReleased, m.dataplaneFailures) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
