package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/calyx-net/calyx/internal/localapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The local API: HTTP/JSON on a unix socket (localapi documents the
// contract). Every operation is a POST of a JSON body answered with 200
// and a JSON body, or with a localapi.Error: 400 for a malformed request,
// 404 for READY without ADD, 409 for a conflict (a second ADD), 503 with
// CNI code 11 when the datastore is unreachable, has no leader or does not
// answer within the datastore timeout, or calyx-node is still starting,
// 500 otherwise.

// readyWait bounds how long a request waits for calyx-node's first
// datastore snapshot before it is answered with "try again later".
const readyWait = 10 * time.Second

// headerProgramSeconds carries, on READY answers, the seconds calyx-node
// spent in netlink and sysctl work for the endpoint (benchmark B1's
// "netlink work per ADD").
const headerProgramSeconds = "Calyx-Dataplane-Program-Seconds"

// health reports calyx-node's readiness for /readyz and /v1/status.
type health struct {
	node  string
	ready func() (bool, string)
}

func (h health) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h health) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := h.ready()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, localapi.Error{Code: cniTryAgainLater, Message: why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h health) status(w http.ResponseWriter, _ *http.Request) {
	ok, why := h.ready()
	writeJSON(w, http.StatusOK, localapi.StatusResponse{Ready: ok, Node: h.node, Message: why})
}

// apiHandler routes the local API to the service; extra adds handlers
// by path (the node status).
func apiHandler(s *service, h health, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	for path, hd := range extra {
		mux.Handle(path, hd)
	}
	mux.HandleFunc(localapi.PathHealthz, h.healthz)
	mux.HandleFunc(localapi.PathReadyz, h.readyz)
	mux.HandleFunc(localapi.PathStatus, h.status)
	mux.Handle(localapi.PathCNIAdd, op(s, "add", s.add))
	mux.Handle(localapi.PathCNIReady, readyOp(s))
	mux.Handle(localapi.PathCNIDel, op(s, "del", noResponse(s.del)))
	mux.Handle(localapi.PathCNICheck, op(s, "check", s.check))
	mux.Handle(localapi.PathCNIGC, op(s, "gc", s.gc))
	mux.Handle(localapi.PathIPAMAdd, op(s, "ipam_add", s.ipamAdd))
	mux.Handle(localapi.PathIPAMDel, op(s, "ipam_del", noResponse(s.ipamDel)))
	return mux
}

// metricsHandler serves /metrics (when there is a gatherer), /healthz and
// /readyz on the metrics address.
func metricsHandler(g prometheus.Gatherer, h health) http.Handler {
	mux := http.NewServeMux()
	if g != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc(localapi.PathHealthz, h.healthz)
	mux.HandleFunc(localapi.PathReadyz, h.readyz)
	return mux
}

type empty struct{}

func noResponse[Req any](fn func(context.Context, Req) error) func(context.Context, Req) (empty, error) {
	return func(ctx context.Context, r Req) (empty, error) { return empty{}, fn(ctx, r) }
}

// op adapts a service operation to HTTP: decode, wait for readiness, run,
// count, encode.
func op[Req, Resp any](s *service, name string, fn func(context.Context, Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := runOp(s, name, r, fn)
		if err != nil {
			writeError(w, s.log, name, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// readyOp is op for READY, which also reports its kernel time.
func readyOp(s *service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		took, err := runOp(s, "ready", r, s.ready)
		if took > 0 {
			w.Header().Set(headerProgramSeconds, strconv.FormatFloat(took.Seconds(), 'f', 6, 64))
		}
		if err != nil {
			writeError(w, s.log, "ready", err)
			return
		}
		writeJSON(w, http.StatusOK, empty{})
	})
}

// boundedOps are the operations whose whole work is bounded by the
// datastore timeout. DEL bounds only its datastore part itself (its host
// side must go whatever etcd does), and a CNI GC may release many
// attachments.
var boundedOps = map[string]bool{"add": true, "ready": true, "check": true, "ipam_add": true, "ipam_del": true}

// failFastOps fail at once, without trying etcd, while the health monitor
// finds it down: they cannot succeed without it. (IPAM DEL queues its
// release instead: see deferred.go.)
var failFastOps = map[string]bool{"add": true, "ipam_add": true}

func runOp[Req, Resp any](s *service, name string, r *http.Request, fn func(context.Context, Req) (Resp, error)) (Resp, error) {
	start := s.now()
	var zero Resp
	resp, err := func() (Resp, error) {
		if r.Method != http.MethodPost {
			return zero, withStatus(http.StatusMethodNotAllowed, "%s %s: use POST", r.Method, r.URL.Path)
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, localapi.MaxRequestBytes+1))
		if err != nil {
			return zero, badRequestf("reading the %s request: %w", name, err)
		}
		if len(body) > localapi.MaxRequestBytes {
			// Read on (boundedly), so that the client gets the answer
			// rather than a connection reset in the middle of its write.
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64*localapi.MaxRequestBytes))
			return zero, &apiError{status: http.StatusRequestEntityTooLarge, err: &requestTooLargeError{op: name}}
		}
		var req Req
		if err := json.Unmarshal(body, &req); err != nil {
			return zero, badRequestf("decoding the %s request: %w", name, err)
		}
		wctx, cancel := context.WithTimeout(r.Context(), readyWait)
		err = s.view.waitReady(wctx)
		cancel()
		if err != nil {
			return zero, errNotReady
		}
		if !boundedOps[name] {
			return fn(r.Context(), req)
		}
		if failFastOps[name] {
			if err := s.unavailable(); err != nil {
				return zero, err
			}
		}
		ctx, cancel := s.datastoreContext(r.Context())
		defer cancel()
		resp, err := fn(ctx, req)
		return resp, s.outageError(ctx, err)
	}()
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.m.cniRequests.WithLabelValues(name, result).Inc()
	s.m.cniSeconds.WithLabelValues(name).Observe(s.now().Sub(start).Seconds())
	return resp, err
}

func writeError(w http.ResponseWriter, log *slog.Logger, op string, err error) {
	status, code := classify(err)
	level := slog.LevelWarn
	if status < http.StatusInternalServerError {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "local API request failed", "op", op, "status", status, "err", err)
	writeJSON(w, status, localapi.Error{Code: code, Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serve serves h on l until ctx ends, then shuts down, letting requests in
// flight finish (for at most 10 s).
func serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnContext: withPeerPID}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutting down a server", "addr", l.Addr().String(), "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	}
	return nil
}
