//go:build !linux

package rie

import (
	"os/exec"
	"syscall"
)

var terminate = syscall.SIGTERM

func setParentDeathSignal(*exec.Cmd) {}
