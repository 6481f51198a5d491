package rie

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

var terminate = syscall.SIGTERM

// setParentDeathSignal stops the emulator if this process dies without
// stopping it.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// killTree SIGKILLs the emulator and its children: the bootstrap, which
// the emulator runs in a process group of its own (so the group goes, with
// anything the bootstrap started). The emulator is stopped first, so that
// it cannot start the bootstrap again between the two kills, and killed
// last, so that its children are still its own when they are looked up.
func killTree(p *os.Process) {
	_ = p.Signal(syscall.SIGSTOP)
	for _, c := range children(p.Pid) {
		_ = syscall.Kill(-c, syscall.SIGKILL)
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	_ = p.Kill()
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}
