package rie

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNotFound is Find's error when the emulator is nowhere.
var ErrNotFound = errors.New("aws-lambda-rie not found")

// Find returns the emulator's path: getenv("NEXUS_RIE") (make dev and make
// test set it), else bin/aws-lambda-rie under root, else aws-lambda-rie on
// PATH.
func Find(root string, getenv func(string) string) (string, error) {
	if p := getenv("NEXUS_RIE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NEXUS_RIE=%s: %w", p, err)
		}
		return p, nil
	}
	if p := filepath.Join(root, "bin", "aws-lambda-rie"); fileExists(p) {
		return p, nil
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: run make tools, or set NEXUS_RIE", ErrNotFound)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
