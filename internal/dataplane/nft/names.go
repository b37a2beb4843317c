package nft

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strings"

	"github.com/calyx-net/calyx/internal/calc"
)

// maxNameLen is the longest chain or set name Calyx uses. The kernel
// allows 255 bytes (NFT_NAME_MAXLEN less the NUL); names are kept well
// below so `nft list` stays readable: a longer name keeps its first
// characters and ends with a hash of the whole.
const maxNameLen = 64

// Names of the chains, maps and sets that do not depend on the State.
const (
	chainForward     = "filter-forward"
	chainInput       = "filter-input"
	chainOutput      = "filter-output"
	chainNATPre      = "nat-prerouting"
	chainNATOut      = "nat-output"
	chainNATPost     = "nat-postrouting"
	chainWlOutDisp   = "wl-out-dispatch" // traffic from workloads
	chainWlInDisp    = "wl-in-dispatch"  // traffic to workloads
	chainWlToHost    = "wl-to-host"
	mapWlOut         = "wl-out" // iifname -> goto wl-out-<if>
	mapWlIn          = "wl-in"  // oifname -> goto wl-in-<if>
	mapHepIn         = "hep-in" // iifname -> jump hep-in-<if>
	mapHepOut        = "hep-out"
	mapDNAT4         = "portmap4"
	mapDNAT6         = "portmap6"
	setMasqPools4    = "masq-pools4"
	setMasqPools6    = "masq-pools6"
	setAllPools4     = "all-pools4"
	setAllPools6     = "all-pools6"
	workloadIfPrefix = "calyx"
)

// kernelName is prefix+name when it is short and plain enough, else
// prefix, the start of name and a hash of name.
func kernelName(prefix, name string) string {
	plain := !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
	if plain && len(prefix)+len(name) <= maxNameLen {
		return prefix + name
	}
	sum := sha256.Sum256([]byte(name))
	hash := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10])) // 16 characters
	keep := []rune{}
	for _, r := range name {
		if len(prefix)+len(string(keep))+1+len(hash)+4 > maxNameLen {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			keep = append(keep, r)
		}
	}
	return prefix + string(keep) + "_" + hash
}

// policyChainName is the kernel chain of a calc.Chain.
func policyChainName(c *calc.Chain) string {
	kind := "policy"
	if c.Kind == calc.KindProfile {
		kind = "profile"
	}
	dir := "in"
	if c.Dir == calc.Egress {
		dir = "out"
	}
	return kernelName(kind+"-"+dir+"-", c.Name)
}

// setName is the kernel set of a calc.Set for one family.
func setName(s *calc.Set, v6 bool) string {
	prefix := "set4-"
	if s.Kind == calc.AddrPortSet {
		prefix = "ports4-"
	}
	if v6 {
		prefix = strings.Replace(prefix, "4", "6", 1)
	}
	return kernelName(prefix, s.ID)
}

// tierChainName names the shared chain of a workload tier: "tier-in-" or
// "tier-out-" and a hash of what the tier calls.
func tierChainName(dir, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "tier-" + dir + "-" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

func hostEndpointChain(ingress bool, ifName string) string {
	if ingress {
		return kernelName("hep-in-", ifName)
	}
	return kernelName("hep-out-", ifName)
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
