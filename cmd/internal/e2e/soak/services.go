package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Services are PostgreSQL and moto_server of the soak's own, started by
// scripts/with-services.sh apart from those of the rest of make test: the
// soak restarts them, which would cut every other test's connections and
// empty its queues.
type Services struct {
	env  map[string]string
	cmd  *exec.Cmd
	hold io.WriteCloser // its command runs until this closes
	done chan struct{}
}

// StartServices runs scripts/with-services.sh of root with PostgreSQL and
// moto_server only, holding them until Stop, and reads what it exports.
func StartServices(ctx context.Context, root string) (*Services, error) {
	dir, err := os.MkdirTemp("", "nexus-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	envFile := filepath.Join(dir, "env")
	// The command writes the environment, then waits for its stdin to
	// close (Stop, or this process ending).
	cmd := exec.Command(filepath.Join(root, "scripts", "with-services.sh"), "bash", "-c", `env -0 >"$0.tmp" && mv "$0.tmp" "$0" && exec cat >/dev/null`, envFile)
	cmd.Env = append(withoutServices(os.Environ()), "SERVICES=pg moto")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	hold, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start scripts/with-services.sh: %w", err)
	}
	s := &Services{cmd: cmd, hold: hold, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	for {
		if b, err := os.ReadFile(envFile); err == nil {
			s.env = map[string]string{}
			for _, kv := range strings.Split(string(b), "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "NEXUS_TEST_") {
					s.env[k] = v
				}
			}
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("scripts/with-services.sh ended before the services were up:\n%s", log.String())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// withoutServices drops the variables of the surrounding with-services
// run, so that the inner one makes its own.
func withoutServices(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "NEXUS_TEST_") || k == "DATABASE_URL" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Getenv reads the services' variables (NEXUS_TEST_*), and this process's
// environment for the rest.
func (s *Services) Getenv(k string) string {
	if strings.HasPrefix(k, "NEXUS_TEST_") {
		return s.env[k]
	}
	return os.Getenv(k)
}

// Stop stops the services and removes their files.
func (s *Services) Stop() {
	s.hold.Close()
	select {
	case <-s.done:
		return
	case <-time.After(30 * time.Second):
	}
	// TERM runs with-services.sh's cleanup (its EXIT trap), which KILL
	// would skip, leaving the cluster, moto_server and their files behind.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(90 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// errNoServices is StartStack's error without PostgreSQL.
var errNoServices = errors.New("soak: no PostgreSQL (NEXUS_TEST_DATABASE_URL): run under scripts/with-services.sh")
