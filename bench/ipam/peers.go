package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
)

// hostLocalRound is (d): hostLocalN sequential ADDs of Debian's host-local
// IPAM plugin, exec'd as a CNI runtime would, then as many DELs. Each call
// includes the process exec (a few ms on the test VM, see
// performance.md §2), which Calyx's in-process allocation does not pay;
// Calyx's CNI plugin will pay a similar exec, measured in B1.
func hostLocalRound(dir string, r int) (float64, float64, float64, float64, error) {
	data := filepath.Join(dir, fmt.Sprintf("host-local-%d", r))
	conf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"bench","ipam":{"type":"host-local","ranges":[[{"subnet":"10.210.0.0/16"}]],"dataDir":%q}}`, data)
	call := func(cmd, id string) (time.Duration, error) {
		c := exec.Command(hostLocal)
		c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + id, "CNI_NETNS=/var/run/netns/bench-none",
			"CNI_IFNAME=eth0", "CNI_PATH=" + filepath.Dir(hostLocal)}
		c.Stdin = strings.NewReader(conf)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		t0 := time.Now()
		err := c.Run()
		d := time.Since(t0)
		if err != nil {
			return d, fmt.Errorf("host-local %s %s: %w: %s", cmd, id, err, out.String())
		}
		return d, nil
	}
	var adds, dels []time.Duration
	for i := range hostLocalN {
		d, err := call("ADD", fmt.Sprintf("bench-%d-%d", r, i))
		if err != nil {
			return 0, 0, 0, 0, err
		}
		adds = append(adds, d)
	}
	for i := range hostLocalN {
		d, err := call("DEL", fmt.Sprintf("bench-%d-%d", r, i))
		if err != nil {
			return 0, 0, 0, 0, err
		}
		dels = append(dels, d)
	}
	a50, a99 := percentiles(adds)
	d50, d99 := percentiles(dels)
	fmt.Fprintf(os.Stderr, "  (d) host-local exec: ADD p50 %.3f p99 %.3f ms, DEL p50 %.3f p99 %.3f ms\n", a50, a99, d50, d99)
	return a50, a99, d50, d99, nil
}

// rawCASRound is (b)'s peer: crossHosts contenders allocate casPerHost
// addresses each from ONE key holding the next free address, each
// allocation a Get then a Txn If ModRevision == read Then Put(next+1),
// retried on conflict. It returns allocations/s and retries per
// allocation.
func (b *bench) rawCASRound(ctx context.Context, r int) (float64, float64, error) {
	key := fmt.Sprintf("/bench/rawcas/%d", r)
	if _, err := b.raw[0].Put(ctx, key, "0"); err != nil {
		return 0, 0, err
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var retries int
	var firstErr error
	for i := range crossHosts {
		cli := b.raw[i]
		wg.Go(func() {
			<-start
			mine := 0
			for range casPerHost {
				for {
					resp, err := cli.Get(ctx, key)
					if err == nil && len(resp.Kvs) == 1 {
						kv := resp.Kvs[0]
						next, _ := strconv.Atoi(string(kv.Value))
						var tr *clientv3.TxnResponse
						tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
							Then(clientv3.OpPut(key, strconv.Itoa(next+1))).Commit()
						if err == nil && tr.Succeeded {
							break
						}
					}
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					mine++
				}
			}
			mu.Lock()
			retries += mine
			mu.Unlock()
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	if firstErr != nil {
		return 0, 0, firstErr
	}
	n := float64(crossHosts * casPerHost)
	rate, per := n/wall.Seconds(), float64(retries)/n
	fmt.Fprintf(os.Stderr, "  (b) raw etcd CAS on one key, %d contenders x %d: %.0f allocs/s, %.2f retries/alloc\n", crossHosts, casPerHost, rate, per)
	return rate, per, nil
}

// calicoClaims is (c)'s peer, Calico's claim (libcalico-go
// findUnclaimedBlock and claimBlock) over the same keys: list the host's
// affinities, GET blocks one at a time from the host's FNV offset until one
// is missing, create it with its affinity (a conflict moves on to the next
// block), then write the first allocation. One write per step, as Calico
// does it, but the block and the handle in one transaction (Calico used
// two, which is its #5203 leak).
func (b *bench) calicoClaims(ctx context.Context, r int) (float64, float64, error) {
	cli := b.raw[1]
	pool := netip.MustParsePrefix("10.230.0.0/16")
	var ds []time.Duration
	var cleanup []string
	for i := range claimHosts {
		host := fmt.Sprintf("calico-r%d-%02d", r, i)
		t0 := time.Now()
		if _, err := cli.Get(ctx, datastore.IPAMPrefix+"affinity/"+host+"/", clientv3.WithPrefix()); err != nil {
			return 0, 0, err
		}
		startIdx := fnvIndex(host)
		claimed := false
		for j := 0; j < claimBlocks && !claimed; j++ {
			cidr := blockAt(pool, (startIdx+j)%claimBlocks)
			key := ipam.BlockKey(cidr)
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return 0, 0, err
			}
			if len(resp.Kvs) > 0 {
				continue
			}
			tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).
				Then(clientv3.OpPut(key, blockJSON(cidr, host)), clientv3.OpPut(ipam.AffinityKey(host, cidr), `{"state":"confirmed"}`)).Commit()
			if err != nil {
				return 0, 0, err
			}
			if !tr.Succeeded {
				continue
			}
			handle := ipam.HandleKey("calico." + host)
			_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", tr.Header.Revision)).
				Then(clientv3.OpPut(key, blockJSONWithOne(cidr, host, "calico."+host)),
					clientv3.OpPut(handle, `{"`+cidr.String()+`":1}`)).Commit()
			if err != nil {
				return 0, 0, err
			}
			cleanup = append(cleanup, key, ipam.AffinityKey(host, cidr), handle)
			claimed = true
		}
		if !claimed {
			return 0, 0, fmt.Errorf("calico-style claim for %s found no free block", host)
		}
		ds = append(ds, time.Since(t0))
	}
	for _, k := range cleanup {
		if _, err := cli.Delete(ctx, k); err != nil {
			return 0, 0, err
		}
	}
	p50, p99 := percentiles(ds)
	fmt.Fprintf(os.Stderr, "  (c) calico-style claim (GET per block): p50 %.3f p99 %.3f ms\n", p50, p99)
	return p50, p99, nil
}

// fnvIndex is the block a host starts looking at: FNV-1a of its name
// modulo the number of blocks.
func fnvIndex(host string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(host))
	return int(h.Sum32() % claimBlocks)
}

// blockAt returns block i (of size /26) of pool.
func blockAt(pool netip.Prefix, i int) netip.Prefix {
	b := pool.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) << 6
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 26)
}

// blockJSON is an empty /26 block affine to host, as ipam stores it.
func blockJSON(cidr netip.Prefix, host string) string {
	return blockJSONWithOne(cidr, host, "")
}

func blockJSONWithOne(cidr netip.Prefix, host, handle string) string {
	var alloc, free, attrs strings.Builder
	first := 0
	if handle != "" {
		alloc.WriteString("0")
		attrs.WriteString(`{"handle":"` + handle + `","attrs":{"node":"` + host + `"}}`)
		first = 1
	} else {
		alloc.WriteString("null")
	}
	for i := 1; i < 64; i++ {
		alloc.WriteString(",null")
	}
	for i := first; i < 64; i++ {
		if i > first {
			free.WriteByte(',')
		}
		free.WriteString(strconv.Itoa(i))
	}
	return `{"cidr":"` + cidr.String() + `","affinity":"host:` + host + `","allocations":[` + alloc.String() +
		`],"unallocated":[` + free.String() + `],"attributes":[` + attrs.String() + `]}`
}
