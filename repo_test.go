// Tests of the repository as a whole: what is committed.
package usage_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nexus/usage/shared/testkit"
)

// TestNoBuildOutputCommitted fails when a tracked file is an executable
// binary (ELF, Mach-O, PE): build output belongs in bin/ or dist/, which
// .gitignore keeps out, never in the repository.
func TestNoBuildOutputCommitted(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		testkit.Missing(t, "not a git checkout: %v", err)
	}
	magics := [][]byte{
		[]byte("\x7fELF"),
		{0xcf, 0xfa, 0xed, 0xfe}, {0xce, 0xfa, 0xed, 0xfe}, // Mach-O
		[]byte("MZ"),
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		f, err := os.Open(name)
		if err != nil {
			continue // deleted in the work tree
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		f.Close()
		for _, m := range magics {
			if n >= len(m) && bytes.Equal(head[:len(m)], m) {
				t.Errorf("%s is a compiled binary; build output must not be committed", name)
			}
		}
	}
}
