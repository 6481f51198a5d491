package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HostBuildFlags are the flags of every host build of this module: the
// Makefile's (make dev, make test) and the devstack's own fallback build
// use the same ones, so that the bootstraps, the devstack and the migrator
// share one build cache entry per package instead of compiling each package
// once per flag set. CGO is off as in SAM's build of a provided.al2023
// function; lambda.norpc drops aws-lambda-go's unused RPC mode.
var HostBuildFlags = []string{"-tags", "lambda.norpc", "-trimpath"}

// BuildBootstraps compiles the functions (functions/<name>) of the module
// at root for this machine in one go build, which schedules their packages
// across the cores itself, into out/<name>. When the joint build fails, each
// function is built alone to tell which ones do not build. It returns the
// binaries by name and the build error of each function that failed.
func BuildBootstraps(ctx context.Context, root string, names []string, out string) (map[string]string, map[string]error) {
	bins, errs := map[string]string{}, map[string]error{}
	if len(names) == 0 {
		return bins, errs
	}
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "./functions/" + n
	}
	if err := goBuild(ctx, root, out+string(filepath.Separator), pkgs...); err == nil {
		for _, n := range names {
			bins[n] = filepath.Join(out, n)
		}
		return bins, errs
	}
	for _, n := range names {
		bin := filepath.Join(out, n)
		if err := goBuild(ctx, root, bin, "./functions/"+n); err != nil {
			errs[n] = err
			continue
		}
		bins[n] = bin
	}
	return bins, errs
}

// goBuild runs go build -o out with HostBuildFlags in root.
func goBuild(ctx context.Context, root, out string, pkgs ...string) error {
	args := append(append([]string{"build"}, HostBuildFlags...), append([]string{"-o", out}, pkgs...)...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, bytes.TrimSpace(msg))
	}
	return nil
}

// PrebuiltBootstraps returns the binaries of the functions in dir (as make
// dev and make test build them, dir/<name>), or ok false when one is
// missing.
func PrebuiltBootstraps(dir string, names []string) (bins map[string]string, ok bool) {
	bins = map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if !fileExists(p) {
			return nil, false
		}
		bins[n] = p
	}
	return bins, true
}

// LambdaConfig says how to run one function under the emulator.
type LambdaConfig struct {
	Name      string // the function's name (functions/<Name>)
	RIE       string // path of aws-lambda-rie
	Bootstrap string // path of the function's bootstrap
	// Env is the function's whole environment: the emulator passes its own
	// environment on to the bootstrap.
	Env []string
	// Timeout is the function's timeout (default 30s).
	Timeout time.Duration
	// Log receives the emulator's and the function's output, one line at a
	// time, prefixed with the function's name; nil discards it.
	Log io.Writer
}

// Lambda is one function running under the AWS Lambda Runtime Interface
// Emulator. The emulator serves one invocation at a time, like one Lambda
// execution environment; Invoke queues callers.
type Lambda struct {
	Name string
	// URL is the emulator's invoke endpoint.
	URL string

	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	mu      sync.Mutex // one invocation at a time

	stateMu       sync.Mutex
	initReport    time.Duration // from the emulator's "INIT REPORT"
	firstResponse time.Duration // from process start to the first answer
	logDone       chan struct{}
}

// FunctionError is an error the function's handler returned (Lambda's
// errorType and errorMessage).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// StartLambda starts the emulator with the function's bootstrap and waits
// until it accepts invocations. The function's init runs on the first
// invocation, as a cold start does.
func StartLambda(ctx context.Context, c LambdaConfig) (*Lambda, error) {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.RIE,
		"--runtime-interface-emulator-address", addrs[0],
		"--runtime-api-address", addrs[1],
		c.Bootstrap)
	cmd.Dir = filepath.Dir(c.Bootstrap)
	cmd.Env = append(append([]string{}, c.Env...),
		"AWS_LAMBDA_FUNCTION_NAME="+c.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int((c.Timeout+time.Second-1)/time.Second)),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
	)
	setParentDeathSignal(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	l := &Lambda{Name: c.Name, URL: "http://" + addrs[0] + "/2015-03-31/functions/function/invocations",
		cmd: cmd, exited: make(chan struct{}), logDone: make(chan struct{})}
	l.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s under %s: %w", c.Name, c.RIE, err)
	}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(l.exited)
	}()
	go l.readLog(pr, c.Log)
	// Wait for the emulator's HTTP port.
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addrs[0], 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return l, nil
		}
		select {
		case <-l.exited:
			return nil, fmt.Errorf("%s: the emulator exited at start (%v)", c.Name, cmd.ProcessState)
		case <-ctx.Done():
			l.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l.Stop()
			return nil, fmt.Errorf("%s: the emulator did not listen on %s", c.Name, addrs[0])
		}
	}
}

var (
	initReportRE   = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initDurationRE = regexp.MustCompile(`Init Duration: ([0-9.]+) ms`)
)

func (l *Lambda) readLog(r io.Reader, w io.Writer) {
	defer close(l.logDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := initReportRE.FindStringSubmatch(line); m != nil {
			l.setInit(m[1])
		} else if m := initDurationRE.FindStringSubmatch(line); m != nil {
			l.stateMu.Lock()
			unset := l.initReport == 0
			l.stateMu.Unlock()
			if unset {
				l.setInit(m[1])
			}
		}
		if w != nil {
			fmt.Fprintf(w, "%-9s | %s\n", l.Name, line)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (l *Lambda) setInit(ms string) {
	v, err := strconv.ParseFloat(ms, 64)
	if err != nil {
		return
	}
	l.stateMu.Lock()
	l.initReport = time.Duration(v * float64(time.Millisecond))
	l.stateMu.Unlock()
}

// InitTimes returns the emulator's init duration of the function (its
// "INIT REPORT": from starting the bootstrap to its first request for
// work) and the time from starting the emulator to the first answer; zero
// until the first invocation has finished.
func (l *Lambda) InitTimes() (initReport, firstResponse time.Duration) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.initReport, l.firstResponse
}

// Invoke invokes the function with payload and returns its response. A
// handler error is a *FunctionError.
func (l *Lambda) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.exited:
		return nil, fmt.Errorf("invoke %s: the emulator is not running", l.Name)
	default:
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", l.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: read response: %w", l.Name, err)
	}
	l.stateMu.Lock()
	if l.firstResponse == 0 {
		l.firstResponse = time.Since(l.started)
	}
	l.stateMu.Unlock()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("invoke %s: emulator answered %s: %s", l.Name, resp.Status, bytes.TrimSpace(body))
	}
	if fe := functionError(body); fe != nil {
		return body, fe
	}
	return body, nil
}

// functionError recognises Lambda's error payload: an object holding
// exactly errorMessage and errorType (and perhaps stackTrace).
func functionError(body []byte) *FunctionError {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !bytes.Contains(body, []byte(`"errorType"`)) {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	for k := range m {
		if k != "errorType" && k != "errorMessage" && k != "stackTrace" {
			return nil
		}
	}
	var fe FunctionError
	if json.Unmarshal(body, &fe) != nil || fe.Type == "" {
		return nil
	}
	return &fe
}

// Stop stops the emulator, which stops the function, and waits for both.
func (l *Lambda) Stop() {
	if l.cmd.Process == nil {
		return
	}
	select {
	case <-l.exited:
	default:
		_ = l.cmd.Process.Signal(terminate)
		select {
		case <-l.exited:
		case <-time.After(5 * time.Second):
			_ = l.cmd.Process.Kill()
			<-l.exited
		}
	}
	<-l.logDone
}

// freeAddrs returns n loopback addresses with free ports.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// baseEnv is the part of this process's environment a function keeps.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "TZ=UTC")
}

var errNoRIE = errors.New("aws-lambda-rie not found")

// findRIE returns the emulator's path: $NEXUS_RIE, else bin/aws-lambda-rie
// under root, else aws-lambda-rie on PATH.
func findRIE(root string) (string, error) {
	if p := os.Getenv("NEXUS_RIE"); p != "" {
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
	return "", fmt.Errorf("%w: run make tools, or set NEXUS_RIE", errNoRIE)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// moduleRoot finds the directory holding go.mod from the working directory
// up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			if strings.Contains(string(b), "module github.com/nexus/usage") {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the nexus usage module (no go.mod found)")
		}
		dir = parent
	}
}
