package rie

import (
	"os/exec"
	"syscall"
)

var terminate = syscall.SIGTERM

// setParentDeathSignal stops the emulator if this process dies without
// stopping it.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
