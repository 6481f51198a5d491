package dashboard_test

import (
	"fmt"

	"github.com/nexus/usage/shared/dashboard"
)

func ExampleAsset() {
	_, contentType, ok := dashboard.Asset("app.js")
	fmt.Println(contentType, ok)
	_, contentType, _ = dashboard.Asset("")
	fmt.Println(contentType)
	_, _, ok = dashboard.Asset("../go.mod")
	fmt.Println(ok)
	// Output:
	// text/javascript; charset=utf-8 true
	// text/html; charset=utf-8
	// false
}
