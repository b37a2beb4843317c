package testnet

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger that writes every record, debug included, into
// t's log, so a failing test shows what the code under test was doing.
// Use it only for code that stops logging before t ends: testing panics
// on a Log after the test has completed.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter turns each write (one slog record) into one t.Log line.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
