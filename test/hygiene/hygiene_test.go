package hygiene

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// pkg is the part of `go list -json` output these tests read.
type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "github.com/calyx-net/calyx/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment (say why it exists before how it works)", p.ImportPath)
		}
	}
}

func TestImportBoundaries(t *testing.T) {
	const mod = "github.com/calyx-net/calyx/"
	rules := []struct {
		dep     string // import path prefix
		allowed func(importPath string) bool
		direct  bool // only direct imports are checked
		why     string
	}{
		{dep: "go.etcd.io/etcd/", direct: true, why: "only internal/datastore talks to etcd (benchmarks may use the raw client as their peer)",
			allowed: func(p string) bool {
				for _, ok := range []string{"internal/datastore", "internal/testnet", "bench/"} {
					if strings.HasPrefix(p, mod+ok) {
						return true
					}
				}
				return false
			}},
		{dep: "github.com/osrg/gobgp", why: "the CNI plugins stay thin",
			allowed: func(p string) bool { return !strings.HasPrefix(p, mod+"cmd/calyx-ipam") && p != mod+"cmd/calyx" }},
		{dep: "github.com/osrg/gobgp", direct: true, why: "only internal/bgp speaks BGP; calyx-node drives it, and the kernel routes stay the reconcile loop's",
			allowed: func(p string) bool {
				return strings.HasPrefix(p, mod+"internal/bgp") || strings.HasPrefix(p, mod+"bench/")
			}},
		{dep: "github.com/google/nftables", direct: true, why: "only the nftables reconciler writes the firewall (benchmarks may drive it as a peer)",
			allowed: func(p string) bool {
				return strings.HasPrefix(p, mod+"internal/dataplane/nft") || strings.HasPrefix(p, mod+"bench/")
			}},
		{dep: mod + "internal/dataplane", why: "the CNI plugins stay thin",
			allowed: func(p string) bool { return !strings.HasPrefix(p, mod+"cmd/calyx-ipam") && p != mod+"cmd/calyx" }},
		{dep: mod + "internal/agent", why: "the CNI plugins stay thin: they reach calyx-node through internal/localapi",
			allowed: func(p string) bool { return !strings.HasPrefix(p, mod+"cmd/calyx-ipam") && p != mod+"cmd/calyx" }},
	}
	for _, p := range listPackages(t) {
		for _, r := range rules {
			deps := p.Deps
			if r.direct {
				deps = p.Imports
			}
			for _, d := range deps {
				if strings.HasPrefix(d, r.dep) && !r.allowed(p.ImportPath) {
					t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
					break
				}
			}
		}
	}
	// The pure packages do no I/O: no etcd, no netlink, no os/exec.
	for _, p := range listPackages(t) {
		for _, pure := range []string{"internal/api", "internal/selector", "internal/calc"} {
			if p.ImportPath != mod+pure {
				continue
			}
			for _, d := range p.Imports {
				if d == "os" || d == "os/exec" || d == "net/http" || strings.HasPrefix(d, "go.etcd.io/") || strings.HasPrefix(d, "github.com/vishvananda/") {
					t.Errorf("pure package %s imports %s", p.ImportPath, d)
				}
			}
		}
	}
}
