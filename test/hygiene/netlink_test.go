package hygiene

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// netlinkDumps are the vishvananda/netlink calls that dump a table and may
// return a partial result with netlink.ErrDumpInterrupted.
var netlinkDumps = map[string]bool{
	"LinkList": true, "AddrList": true, "RouteList": true, "RouteListFiltered": true,
	"RouteListFilteredIter": true, "NeighList": true, "NeighListExecute": true,
	"NeighProxyList": true, "RuleList": true, "RuleListFiltered": true,
	"BridgeVlanList": true, "QdiscList": true, "ClassList": true, "FilterList": true,
	"ConntrackTableList": true, "XfrmStateList": true, "XfrmPolicyList": true,
}

// Every netlink dump in non-test code goes through internal/nlsafe, which
// retries interrupted dumps (the forbidigo rule of
// containernetworking/plugins, as a test). Tests may dump directly: a
// partial read there fails a test, it does not program a wrong kernel.
func TestNetlinkDumpsGoThroughNlsafe(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "nlsafe" && strings.HasSuffix(filepath.Dir(path), "internal")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if !importsNetlink(f) {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !netlinkDumps[sel.Sel.Name] {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "nlsafe" {
				return true
			}
			t.Errorf("%s: %s is a raw netlink dump: use internal/nlsafe, which retries interrupted dumps", fset.Position(call.Pos()), sel.Sel.Name)
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func importsNetlink(f *ast.File) bool {
	for _, imp := range f.Imports {
		if strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/vishvananda/netlink") {
			return true
		}
	}
	return false
}
