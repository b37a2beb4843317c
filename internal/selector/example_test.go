package selector_test

import (
	"errors"
	"fmt"

	"github.com/calyx-net/calyx/internal/selector"
)

func ExampleParse() {
	sel, err := selector.Parse(`role=='db' && (env != "prod" || has(calyx.dev/debug))`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sel)
	fmt.Println(sel.Evaluate(map[string]string{"role": "db", "env": "dev"}))
	fmt.Println(sel.Evaluate(map[string]string{"role": "db", "env": "prod"}))
	fmt.Println(sel.LabelKeys())
	// Output:
	// role == "db" && (env != "prod" || has(calyx.dev/debug))
	// true
	// false
	// [calyx.dev/debug env role]
}

func ExampleParseError() {
	_, err := selector.Parse(`app in {"web", "api"`)
	var pe *selector.ParseError
	if errors.As(err, &pe) {
		fmt.Println(pe.Pos)
	}
	fmt.Println(err)
	// Output:
	// 20
	// selector "app in {\"web\", \"api\"" at position 20: expected "," or "}" in the set opened at position 7
}
