package notify_test

import (
	"os"
	"testing"

	"github.com/nexus/usage/shared/postgres/pgtest"
)

// TestMain runs the tests in both PostgreSQL modes (pgtest.Main).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
