package browser_test

import (
	"os"
	"testing"

	"github.com/nexus/usage/shared/postgres/pgtest"
)

// TestMain runs the tests once, as deployed: behind RDS Proxy (pgtest.MainDeployed).
func TestMain(m *testing.M) { os.Exit(pgtest.MainDeployed(m)) }
