package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/scheduler"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/samtemplate"
)

// Stack is a running local stack.
type Stack struct {
	cfg    Config
	logger *slog.Logger

	tmpl     *samtemplate.Template
	jobs     []scheduler.Job // the template's schedules, run or not
	emulator string          // aws-lambda-rie
	built    chan bootstraps // startBuild's result, for startFunctions
	workDir  string          // the fallback build's output
	db       *postgres.DB
	lambdas  map[string]*rie.Lambda // the running functions
	servers  []*http.Server
	platform *platform.API // the sample platform API
	receiver *receiver     // the webhook receiver
	state    State
	ready    time.Duration

	// run is the context of the work that outlives Start (the build, the
	// servers, the poller, the scheduler); Stop cancels it and waits for wg.
	run    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start brings the stack up, one step after the other (the build of the
// bootstraps, when they were not built beforehand, runs in the background
// until startFunctions needs it). On error it stops whatever it had
// started; the stack runs until Stop, whatever becomes of ctx afterwards.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Stack, err error) {
	s := newStack(cfg.withDefaults(), logger)
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	for _, step := range []func(context.Context) error{
		s.readTemplate,       // functions, timeouts, routes and schedules
		s.findEmulator,       // aws-lambda-rie
		s.startBuild,         // the bootstraps: prebuilt, or built in the background
		s.openDatabase,       // DATABASE_URL, migrated, or a copy of the migrated template
		s.createQueues,       // the usage queue, its DLQ and the alert bus in moto_server
		s.seedUsers,          // the demo users and their credentials
		s.serveReceiver,      // the webhook receiver, a platform endpoint
		s.startFunctions,     // each bootstrap under the emulator
		s.superviseFunctions, // a fresh execution environment for one that died
		s.serveGateway,       // the local API Gateway in front of the HTTP function
		s.servePlatform,      // the sample platform API behind shared/meter
		s.serveAdmin,         // GET /state, POST /run/{function}
		s.startPoller,        // the usage queue's event source mapping into record
		s.startScheduler,     // the schedules of the running functions
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	s.ready = time.Since(s.cfg.Start)
	logger.Info(fmt.Sprintf("ready in %.1fs", s.ready.Seconds()), "gateway", s.state.GatewayURL, "admin", s.state.AdminURL,
		"platform", s.state.PlatformURL)
	return s, nil
}

func newStack(cfg Config, logger *slog.Logger) *Stack {
	s := &Stack{cfg: cfg, logger: logger, lambdas: map[string]*rie.Lambda{}}
	s.run, s.cancel = context.WithCancel(context.Background())
	s.state = State{Region: cfg.Region, JWTIssuer: seed.JWTIssuer, JWTAudience: seed.JWTAudience,
		Functions: map[string]string{}, StripeURL: cfg.Env("NEXUS_TEST_STRIPE_URL"), BatchWindowSeconds: cfg.BatchWindow.Seconds()}
	return s
}

// background runs f in a goroutine until Stop.
func (s *Stack) background(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.run)
	}()
}

// serve listens on addr and serves h until Stop; it returns the base URL.
func (s *Stack) serve(addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	s.background(func(context.Context) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("server", "addr", addr, "error", err)
		}
	})
	return "http://" + ln.Addr().String(), nil
}

// State returns the stack's state.
func (s *Stack) State() *State {
	st := s.state
	return &st
}

// Ready is how long the stack took to come up.
func (s *Stack) Ready() time.Duration { return s.ready }

// Lambda returns a running function, or nil.
func (s *Stack) Lambda(name string) *rie.Lambda { return s.lambdas[name] }

// Invoke invokes a running function by name.
func (s *Stack) Invoke(ctx context.Context, name string, input []byte) ([]byte, error) {
	l := s.lambdas[name]
	if l == nil {
		return nil, fmt.Errorf("function %s is not running (%s)", name, s.state.Functions[name])
	}
	return l.Invoke(ctx, input)
}

// Stop stops everything the stack started, also after Start failed
// midway.
func (s *Stack) Stop() {
	s.cancel()
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	s.wg.Wait()
	s.closePlatform()
	for _, l := range s.lambdas {
		l.Stop()
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.workDir != "" {
		os.RemoveAll(s.workDir)
	}
}
