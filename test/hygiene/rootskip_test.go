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

// A package whose tests need root must skip each of them with t.Skip
// (testnet.RequireRoot), so that `go test -v` lists them as SKIP. A
// TestMain that checks the user and exits 0 instead makes `go test` print
// "ok" for a package that tested nothing.
func TestRootSkipsAreVisible(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil || !calls(fn.Body, "os", "Geteuid") {
				continue
			}
			if pos, ok := exitsZero(fn.Body); ok {
				t.Errorf("%s: %s checks the user and ends the package with status 0: skip each test with testnet.RequireRoot(t) instead",
					fset.Position(pos), fn.Name.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// calls reports whether body calls pkg.name.
func calls(body ast.Node, pkg, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && isSelector(call.Fun, pkg, name) {
			found = true
		}
		return !found
	})
	return found
}

// exitsZero finds an os.Exit(0) or a `return 0` in body (TestMain helpers
// return the status that TestMain passes to os.Exit).
func exitsZero(body ast.Node) (token.Pos, bool) {
	var pos token.Pos
	ast.Inspect(body, func(n ast.Node) bool {
		if pos.IsValid() {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false // its returns are not the function's
		case *ast.CallExpr:
			if isSelector(n.Fun, "os", "Exit") && len(n.Args) == 1 && isZero(n.Args[0]) {
				pos = n.Pos()
			}
		case *ast.ReturnStmt:
			if len(n.Results) == 1 && isZero(n.Results[0]) {
				pos = n.Pos()
			}
		}
		return true
	})
	return pos, pos.IsValid()
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

func isZero(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.INT && lit.Value == "0"
}
