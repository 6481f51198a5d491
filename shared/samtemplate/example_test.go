package samtemplate_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/samtemplate"
)

// Example reads the record function's timeout and the aggregate
// function's schedule from the repository's template.yaml.
func Example() {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	if fn := tmpl.Function("record"); fn != nil { // functions/record
		fmt.Println("record times out after", time.Duration(fn.Timeout)*time.Second)
	}
	if fn := tmpl.Function("aggregate"); fn != nil {
		for _, s := range fn.Schedules {
			fmt.Println("aggregate runs on", s.Expression)
		}
	}
	// Output:
	// record times out after 30s
	// aggregate runs on cron(5 * * * ? *)
}
