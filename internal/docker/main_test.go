package docker

import (
	"testing"

	"github.com/calyx-net/calyx/internal/testnet"
)

func TestMain(m *testing.M) { testnet.VerifyNoLeaks(m) }
