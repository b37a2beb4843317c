package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/calyx-net/calyx/internal/dataplane/route"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/localapi"
)

// A data directory in use is refused at once, naming it and its holder's
// pid; once released, it may be locked again.
func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "calyx")
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	if err == nil {
		t.Fatal("a second lock of the same data directory succeeded")
	}
	for _, want := range []string{"--data-dir " + dir + " is in use", "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("locking after release: %v", err)
	}
	_ = l2.Close()
}

// A second calyx-node on a data directory in use exits at once with the
// error, without touching the first one's socket.
func TestSecondNodeOnSameDataDirExits(t *testing.T) {
	etcd, _ := startTestEtcd(t)
	dir := t.TempDir()
	n := startNode(t, etcd, hooks{kernel: route.NewFake(), policy: fakeNftables()}, func(c *Config) { c.DataDir = dir })
	err := runToExit(t, Config{
		NoBGP: true, NodeName: "node-b", NodeIPv4: "192.0.2.11/24", Etcd: datastore.Config{Endpoints: etcd.Endpoints()},
		Socket: n.cfg.Socket, DataDir: dir,
	}, hooks{kernel: route.NewFake(), policy: fakeNftables()})
	if err == nil || !strings.Contains(err.Error(), "--data-dir "+dir+" is in use") {
		t.Fatalf("second calyx-node on %s: %v, want refused naming the directory", dir, err)
	}
	var st localapi.StatusResponse
	if err := n.client.Do(t.Context(), localapi.PathStatus, struct{}{}, &st); err != nil || !st.Ready {
		t.Errorf("the first calyx-node after the refusal: %+v, %v", st, err)
	}
}

// The host identity is made once, mode 0600, and kept; a damaged file is
// refused with an error naming it.
func TestHostID(t *testing.T) {
	dir := t.TempDir()
	id, err := loadHostID(dir)
	if err != nil || len(id) != 32 {
		t.Fatalf("first host id %q, %v", id, err)
	}
	st, err := os.Stat(filepath.Join(dir, hostIDFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("host-id file: %v, %v", st, err)
	}
	if again, err := loadHostID(dir); err != nil || again != id {
		t.Errorf("host id on the second load %q (%v), want %q", again, err, id)
	}
	if other, _ := loadHostID(t.TempDir()); other == id {
		t.Error("two data directories got the same host id")
	}
	if err := os.WriteFile(filepath.Join(dir, hostIDFile), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadHostID(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, hostIDFile)) {
		t.Errorf("damaged host-id: %v, want an error naming the file", err)
	}
}
