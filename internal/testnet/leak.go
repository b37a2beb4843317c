package testnet

import (
	"testing"

	"go.uber.org/goleak"
)

// VerifyNoLeaks runs the package's tests and then fails, exiting non-zero,
// if any goroutine they started is still running. Call it as the whole body
// of TestMain:
//
//	func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }
func VerifyNoLeaks(m *testing.M) {
	goleak.VerifyTestMain(m, leakIgnores...)
}

// leakIgnores lists goroutines that outlive every test by design: they
// belong to libraries, start once per process and are not ours to stop.
var leakIgnores = []goleak.Option{}
