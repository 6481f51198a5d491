//go:build !linux

package rie

import (
	"os"
	"os/exec"
	"syscall"
)

var terminate = syscall.SIGTERM

func setParentDeathSignal(*exec.Cmd) {}

// killTree kills the emulator; without /proc its bootstrap is not found
// and may outlive it.
func killTree(p *os.Process) { _ = p.Kill() }
