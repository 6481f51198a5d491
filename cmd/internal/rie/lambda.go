package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how to run one function under the emulator.
type Config struct {
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
//
// An execution environment can die (Kill, or a crash of the emulator);
// Restart replaces it with a fresh one on the same addresses, as Lambda
// starts a new execution environment for the next invocation, so that
// holders of the Lambda (the poller, the gateway) keep using it.
type Lambda struct {
	Name string
	// URL is the emulator's invoke endpoint; Restart keeps it.
	URL string

	cfg   Config
	addrs []string // the invoke endpoint's and the runtime API's
	mu    sync.Mutex

	inflight    atomic.Int64 // invocations running (0 or 1: mu serialises them)
	invocations atomic.Int64 // invocations finished, failed ones included

	stateMu       sync.Mutex
	proc          *proc // the current execution environment
	restarts      int
	initReport    time.Duration // from the emulator's "INIT REPORT"
	firstResponse time.Duration // from process start to the first answer
}

// proc is one emulator process: one execution environment.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	logDone chan struct{}
}

// MaxPayload is Lambda's limit on a synchronous invocation's payload and
// response.
const MaxPayload = 6 << 20

// ErrNotRunning is the error of Invoke and Kill when the function's
// execution environment has exited (until Restart).
var ErrNotRunning = errors.New("the emulator is not running")

// FunctionError is an error the function's handler returned (Lambda's
// errorType and errorMessage).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Start starts the emulator with the function's bootstrap and waits until
// it accepts invocations. The function's init runs on the first
// invocation, as a cold start does.
func Start(ctx context.Context, c Config) (*Lambda, error) {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	// An emulator that exits at start most likely lost one of its ports to
	// another process between freeAddrs and its bind: try other ports.
	var err error
	for range 3 {
		var addrs []string
		if addrs, err = freeAddrs(2); err != nil {
			return nil, err
		}
		l := &Lambda{Name: c.Name, URL: "http://" + addrs[0] + "/2015-03-31/functions/function/invocations", cfg: c, addrs: addrs}
		var p *proc
		if p, err = l.launch(ctx); err == nil {
			l.proc = p
			return l, nil
		}
		if !errors.Is(err, errExitedAtStart) {
			return nil, err
		}
	}
	return nil, err
}

// errExitedAtStart is launch's error when the emulator exits before it
// listens on both its addresses.
var errExitedAtStart = errors.New("the emulator exited at start")

// launch starts an emulator process on l's addresses and waits until it
// listens on both: its invoke endpoint and the runtime API it gives the
// bootstrap (an emulator that cannot bind the latter exits).
func (l *Lambda) launch(ctx context.Context) (*proc, error) {
	c := l.cfg
	cmd := exec.Command(c.RIE,
		"--runtime-interface-emulator-address", l.addrs[0],
		"--runtime-api-address", l.addrs[1],
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
	p := &proc{cmd: cmd, exited: make(chan struct{}), logDone: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s under %s: %w", c.Name, c.RIE, err)
	}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	go l.readLog(pr, c.Log, p.logDone)
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range l.addrs {
		for {
			conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-p.exited:
				<-p.logDone
				return nil, fmt.Errorf("%s: %w (%v)", c.Name, errExitedAtStart, cmd.ProcessState)
			case <-ctx.Done():
				p.stop()
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("%s: the emulator did not listen on %s", c.Name, addr)
			}
		}
	}
	return p, nil
}

// current is the current execution environment.
func (l *Lambda) current() *proc {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.proc
}

// InitTimes returns the emulator's init duration of the function (its
// "INIT REPORT": from starting the bootstrap to its first request for
// work) and the time from starting the emulator to the first answer; zero
// until the first invocation has finished. Restart resets them: they are
// the current execution environment's.
func (l *Lambda) InitTimes() (initReport, firstResponse time.Duration) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.initReport, l.firstResponse
}

// InFlight reports whether an invocation is running (not merely queued
// behind another).
func (l *Lambda) InFlight() bool { return l.inflight.Load() > 0 }

// Invocations is how many invocations have finished, failed ones
// included.
func (l *Lambda) Invocations() int64 { return l.invocations.Load() }

// Restarts is how many times Restart replaced the execution environment.
func (l *Lambda) Restarts() int {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.restarts
}

// Invoke invokes the function with payload (at most MaxPayload bytes) and
// returns its response. A handler error is a *FunctionError.
func (l *Lambda) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight.Add(1)
	defer func() {
		l.inflight.Add(-1)
		l.invocations.Add(1)
	}()
	p := l.current()
	select {
	case <-p.exited:
		return nil, fmt.Errorf("invoke %s: %w", l.Name, ErrNotRunning)
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
	if l.firstResponse == 0 && l.proc == p {
		l.firstResponse = time.Since(p.started)
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

// Exited returns a channel closed when the current execution environment
// has exited (Kill, Stop, or a crash).
func (l *Lambda) Exited() <-chan struct{} { return l.current().exited }

// Kill ends the execution environment at once, as a crash of the function
// would: SIGKILL to the bootstrap (and whatever it started) and to the
// emulator, with no chance to finish the invocation in flight, which
// fails. It returns once the emulator has exited, or ErrNotRunning if it
// had already. Restart starts a fresh one.
func (l *Lambda) Kill() error {
	p := l.current()
	select {
	case <-p.exited:
		return fmt.Errorf("kill %s: %w", l.Name, ErrNotRunning)
	default:
	}
	killTree(p.cmd.Process)
	<-p.exited
	<-p.logDone
	return nil
}

// Restart replaces the execution environment with a fresh emulator and
// bootstrap on the same invoke address (a cold start at the next
// invocation), stopping the current one first if it still runs.
// Invocations queued meanwhile go to the new one.
func (l *Lambda) Restart(ctx context.Context) error {
	l.current().stop()
	var p *proc
	var err error
	// Only the invoke address must stay (callers hold its URL): the runtime
	// API's port is picked again on each try, as Start picks both, since
	// another process may have taken the old one meanwhile.
	for range 3 {
		var rt []string
		if rt, err = freeAddrs(1); err != nil {
			break
		}
		l.addrs = []string{l.addrs[0], rt[0]}
		if p, err = l.launch(ctx); err == nil || !errors.Is(err, errExitedAtStart) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("restart %s: %w", l.Name, err)
	}
	l.stateMu.Lock()
	l.proc, l.restarts = p, l.restarts+1
	l.initReport, l.firstResponse = 0, 0
	l.stateMu.Unlock()
	return nil
}

// Stop stops the emulator, which stops the function, and waits for both.
func (l *Lambda) Stop() { l.current().stop() }

func (p *proc) stop() {
	if p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(terminate)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			killTree(p.cmd.Process)
			<-p.exited
		}
	}
	<-p.logDone
}

// freeAddrs returns n loopback addresses with free ports. The ports lie
// below the kernel's ephemeral range where it has room for them: a port
// that the kernel hands out for outgoing connections and listeners on
// port 0 (every test's PostgreSQL and HTTP connections) can be taken in
// the moment between this check and the emulator's bind, and a Restart
// binds the same invoke port again.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := portsOutsideEphemeral()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		port := 0
		if hi > lo && tries < 100 {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			if port != 0 {
				continue // taken: try another
			}
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// portsOutsideEphemeral is a range of ports [lo, hi) below the ephemeral
// range of Linux (/proc/sys/net/ipv4/ip_local_port_range), or an empty one
// where it is unknown or leaves no room.
func portsOutsideEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first < 12000 {
		return 0, 0
	}
	return 10000, first
}

// BaseEnv is the part of this process's environment a function keeps
// (PATH, HOME, TMPDIR, LANG), and TZ=UTC as in Lambda. Config.Env starts
// with it.
func BaseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "TZ=UTC")
}
