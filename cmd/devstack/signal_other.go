//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

var terminate = syscall.SIGTERM

func setParentDeathSignal(*exec.Cmd) {}
