package env_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/env"
)

// Example reads a function's configuration: every value with its default,
// secrets plain locally or by ARN in AWS, and one check at the end that
// names the first bad value. A function passes os.Getenv.
func Example() {
	vars := map[string]string{"DATABASE_URL": "postgres://127.0.0.1/nexus", "GRACE_PERIOD": "2d", "MAX_ATTEMPTS": "ten"}
	e := env.New(context.Background(), func(k string) string { return vars[k] })
	url, err := e.Secret("DATABASE_URL", "DATABASE_SECRET_ARN", "url") // DATABASE_SECRET_ARN in AWS
	if err != nil {
		fmt.Println(err)
		return
	}
	grace := e.Duration("GRACE_PERIOD", 24*time.Hour)
	attempts := e.Int("MAX_ATTEMPTS", 10)
	fmt.Println(url, grace, attempts)
	if err := e.Err(); err != nil {
		fmt.Println(err) // the first bad value, naming the variable
	}
	// Output:
	// postgres://127.0.0.1/nexus 48h0m0s 10
	// MAX_ATTEMPTS: want a non-negative integer, got "ten"
}
