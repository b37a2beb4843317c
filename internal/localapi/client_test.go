package localapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calyx-net/calyx/internal/localapi"
)

// serve serves h on a unix socket of the test's and returns its path
// and a count of the connections accepted.
func serve(t *testing.T, h http.Handler) (string, *atomic.Int32) {
	t.Helper()
	dir, err := os.MkdirTemp("", "lapi-") //nolint:usetesting // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conns := &atomic.Int32{}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return path, conns
}

type echo struct {
	Path  string `json:"path"`
	Body  string `json:"body"`
	Large string `json:"large,omitempty"`
}

func TestClientAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		_ = json.NewEncoder(w).Encode(echo{Path: r.URL.Path, Body: in["x"]})
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		// Big enough that net/http sends it chunked.
		_ = json.NewEncoder(w).Encode(echo{Path: r.URL.Path, Large: strings.Repeat("y", 100_000)})
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(localapi.Error{Code: 11, Message: "try later"})
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("not json"))
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_ = json.NewEncoder(w).Encode(echo{Path: "/close"})
	})
	path, conns := serve(t, mux)
	c := localapi.NewClient(path)
	defer c.CloseIdle()
	ctx := t.Context()

	var got echo
	if err := c.Do(ctx, "/small", map[string]string{"x": "hello"}, &got); err != nil || got != (echo{Path: "/small", Body: "hello"}) {
		t.Errorf("small: %+v, %v", got, err)
	}
	got = echo{}
	if err := c.Do(ctx, "/large", struct{}{}, &got); err != nil || len(got.Large) != 100_000 || got.Path != "/large" {
		t.Errorf("large (chunked): %d bytes, path %q, %v", len(got.Large), got.Path, err)
	}
	if err := c.Do(ctx, "/small", map[string]string{"x": "again"}, nil); err != nil {
		t.Errorf("small, no answer wanted: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for three calls, want one kept open", n)
	}
	var api *localapi.APIError
	if err := c.Do(ctx, "/fail", struct{}{}, nil); !errors.As(err, &api) || api.Status != 503 || api.Body.Code != 11 || api.Body.Message != "try later" {
		t.Errorf("an error answer: %v", err)
	}
	if err := c.Do(ctx, "/garbage", struct{}{}, nil); !errors.As(err, &api) || api.Status != 502 || !strings.Contains(api.Body.Message, "answered HTTP 502") {
		t.Errorf("a non-JSON error answer: %v", err)
	}
	if err := c.Do(ctx, "/close", struct{}{}, &got); err != nil || got.Path != "/close" {
		t.Errorf("an answer that closes the connection: %+v %v", got, err)
	}
	before := conns.Load()
	if err := c.Do(ctx, "/small", map[string]string{"x": "after close"}, &got); err != nil || got.Body != "after close" {
		t.Errorf("after a closed connection: %+v %v", got, err)
	}
	if conns.Load() != before+1 {
		t.Errorf("no new connection after the server closed one")
	}
	if err := c.Do(ctx, "/nope", struct{}{}, nil); !errors.As(err, &api) || api.Status != 404 {
		t.Errorf("an unknown path: %v", err)
	}
}

// TestClientIdleClosedByServer: a kept connection the server has closed
// meanwhile is replaced, and the call succeeds.
func TestClientIdleClosedByServer(t *testing.T) {
	// A server with a tiny idle timeout closes the kept connection.
	var got echo
	path2, conns2 := serveIdle(t)
	c2 := localapi.NewClient(path2)
	defer c2.CloseIdle()
	if err := c2.Do(t.Context(), "/a", struct{}{}, &got); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // past the idle timeout: the server closed it
	if err := c2.Do(t.Context(), "/b", struct{}{}, &got); err != nil || got.Path != "ok" {
		t.Errorf("a call after the server closed the idle connection: %+v %v", got, err)
	}
	if conns2.Load() != 2 {
		t.Errorf("%d connections, want 2 (the closed one replaced)", conns2.Load())
	}
}

func serveIdle(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	dir, err := os.MkdirTemp("", "lapi-") //nolint:usetesting // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conns := &atomic.Int32{}
	srv := &http.Server{ReadHeaderTimeout: time.Second, IdleTimeout: 50 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"path":"ok"}`)) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return path, conns
}

func TestClientErrors(t *testing.T) {
	c := localapi.NewClient("/nonexistent/calyx.sock")
	if err := c.Do(t.Context(), "/x", struct{}{}, nil); !localapi.IsUnreachable(err) {
		t.Errorf("no socket: %v, want unreachable", err)
	}
	block := make(chan struct{})
	path, _ := serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer close(block)
	c = localapi.NewClient(path)
	defer c.CloseIdle()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Do(ctx, "/slow", struct{}{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its deadline: %v", err)
	}
	big := map[string]string{"x": strings.Repeat("z", localapi.MaxRequestBytes)}
	var api *localapi.APIError
	if err := c.Do(t.Context(), "/x", big, nil); !errors.As(err, &api) || api.Status != 413 {
		t.Errorf("an oversized request: %v", err)
	}
}
