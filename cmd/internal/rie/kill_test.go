package rie

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/testkit"
)

// TestKillAndRestart runs a bash runtime under the emulator, kills the
// execution environment in mid-invocation and restarts it: the invocation
// in flight fails, no process of the old environment is left, and the
// fresh one answers on the same URL.
func TestKillAndRestart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Kill finds the bootstrap in /proc")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	emulator, err := Find(root, os.Getenv)
	testkit.Require(t, err, "the Lambda emulator")
	testkit.RequireTool(t, "curl", "the test runtime needs it")
	bootstrap, err := filepath.Abs("testdata/echo-bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(t.TempDir(), "pids")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Start(ctx, Config{Name: "echo", RIE: emulator, Bootstrap: bootstrap,
		Env: append(BaseEnv(), "ECHO_PIDS="+pids), Timeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	if out, err := l.Invoke(ctx, []byte(`"hello"`)); err != nil || string(out) != `"hello"` {
		t.Fatalf("Invoke = %s, %v; want \"hello\"", out, err)
	}

	failed := make(chan error, 1)
	go func() {
		_, err := l.Invoke(ctx, []byte(`"sleep"`))
		failed <- err
	}()
	var old []int
	for len(old) < 2 {
		if ctx.Err() != nil {
			t.Fatal("the runtime never started the slow invocation")
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(pids)
		old = old[:0]
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				old = append(old, p)
			}
		}
	}
	if !l.InFlight() {
		t.Error("InFlight() = false during an invocation")
	}
	if err := l.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err == nil {
		t.Error("the invocation in flight succeeded after Kill")
	}
	if l.InFlight() {
		t.Error("InFlight() = true after the invocation failed")
	}
	for _, p := range old {
		for alive(p) {
			if ctx.Err() != nil {
				t.Fatalf("process %d of the killed environment is still running", p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := l.Invoke(ctx, []byte(`"x"`)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Invoke after Kill: %v; want ErrNotRunning", err)
	}
	if err := l.Kill(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill after Kill: %v; want ErrNotRunning", err)
	}

	url := l.URL
	if err := l.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Invoke(ctx, []byte(`"again"`)); err != nil || string(out) != `"again"` {
		t.Fatalf("Invoke after Restart = %s, %v; want \"again\"", out, err)
	}
	if l.URL != url || l.Restarts() != 1 {
		t.Errorf("after Restart: URL %s, Restarts %d; want %s, 1", l.URL, l.Restarts(), url)
	}
	if n := l.Invocations(); n != 4 {
		t.Errorf("Invocations() = %d; want 4", n)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}
