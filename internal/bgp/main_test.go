package bgp

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package on leaked goroutines, as
// testnet.VerifyNoLeaks does, less one GoBGP leaks by itself: when a
// session's FSM stops, GoBGP closes its outgoing InfiniteChannel and
// drains it without blocking (cleanInfiniteChannel in
// gobgp/v4 pkg/server/util.go), so a message still buffered leaves the
// channel's pump goroutine blocked forever. It is GoBGP's, one per
// session stopped with messages queued, and nothing outside GoBGP can
// drain it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))
}
