package devstack

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/scheduler"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/samtemplate"
)

// bootstraps are the functions' binaries by name, and the build error of
// each function that did not build.
type bootstraps struct {
	names []string // functions/*/main.go
	bins  map[string]string
	errs  map[string]error
}

// readTemplate reads the functions' timeouts, routes and schedules from
// the SAM template; schedules it cannot read are left out with a warning.
func (s *Stack) readTemplate(context.Context) error {
	tmpl, err := samtemplate.Load(filepath.Join(s.cfg.Root, s.cfg.Template))
	if err != nil {
		return err
	}
	s.tmpl = tmpl
	if s.jobs, err = scheduler.Jobs(tmpl); err != nil {
		s.logger.Warn("schedules left out", "error", err)
	}
	return nil
}

// findEmulator finds aws-lambda-rie ($NEXUS_RIE, bin/, PATH).
func (s *Stack) findEmulator(context.Context) (err error) {
	s.emulator, err = rie.Find(s.cfg.Root, s.cfg.Env)
	return err
}

// startBuild gets the bootstraps ready for startFunctions: those of
// Config.Bootstraps (make dev and make test build them before anything
// starts), or else a build into a work directory, which takes longest and
// so runs while the next steps prepare the database and the queues. The
// build has no deadline of its own; ctx and Stop end it.
func (s *Stack) startBuild(ctx context.Context) error {
	names := rie.FunctionDirs(s.cfg.Root)
	s.built = make(chan bootstraps, 1)
	if bins, ok := rie.PrebuiltBootstraps(s.cfg.Bootstraps, names); ok {
		s.built <- bootstraps{names: names, bins: bins}
		return nil
	}
	dir, err := os.MkdirTemp("", "nexus-devstack-")
	if err != nil {
		return err
	}
	s.workDir = dir
	buildCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.run, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		bins, errs := rie.BuildBootstraps(buildCtx, s.cfg.Root, names, dir)
		s.built <- bootstraps{names: names, bins: bins, errs: errs}
	}()
	return nil
}

// startFunctions waits for the bootstraps and starts each function under
// the emulator, all at once, with the environment the template gives it.
// A function that did not build or does not start is left out; State says
// which.
func (s *Stack) startFunctions(ctx context.Context) error {
	var b bootstraps
	select {
	case b = <-s.built:
	case <-ctx.Done():
		return ctx.Err()
	}
	var mu sync.Mutex // s.lambdas, s.state.Functions
	var wg sync.WaitGroup
	for _, n := range b.names {
		if err := b.errs[n]; err != nil {
			mu.Lock()
			s.state.Functions[n] = "build failed"
			mu.Unlock()
			s.logger.Error("function does not build; not starting it", "function", n, "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := s.tmpl.Function(n)
			if fn == nil {
				mu.Lock()
				s.state.Functions[n] = "not in the template"
				mu.Unlock()
				s.logger.Error("function is not in the template; not starting it", "function", n)
				return
			}
			env := append(functionEnv(fn, s.cfg.Env, s.cfg.Region, &s.state), s.cfg.FunctionEnv...)
			l, err := rie.Start(ctx, rie.Config{Name: n, RIE: s.emulator, Bootstrap: b.bins[n], Env: env,
				Timeout: functionTimeout(s.tmpl, n), Log: rie.QuietLog(s.cfg.FunctionLog)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.state.Functions[n] = "failed to start"
				s.logger.Error("start function", "function", n, "error", err)
				return
			}
			s.lambdas[n] = l
			s.state.Functions[n] = "running"
		}()
	}
	wg.Wait()
	return nil
}

// superviseFunctions watches every running function and, when its
// execution environment dies (a crash, or rie.Lambda.Kill), starts a
// fresh one, as Lambda does for the next invocation; until then
// invocations fail and the poller's batch goes back to the queue.
func (s *Stack) superviseFunctions(context.Context) error {
	for name, l := range s.lambdas {
		s.background(func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-l.Exited():
				}
				for pause := 100 * time.Millisecond; ctx.Err() == nil; pause = min(2*pause, 5*time.Second) {
					err := l.Restart(ctx)
					if err == nil {
						s.logger.Warn("function's execution environment died; started a new one", "function", name, "restarts", l.Restarts())
						break
					}
					if ctx.Err() == nil {
						s.logger.Error("restart function", "function", name, "error", err)
					}
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		})
	}
	return nil
}

// functionTimeout is the function's timeout in the template, else 30s.
func functionTimeout(t *samtemplate.Template, name string) time.Duration {
	if fn := t.Function(name); fn != nil {
		return time.Duration(fn.Timeout) * time.Second
	}
	return 30 * time.Second
}

// functionEnv is the environment of fn as template.yaml gives it, with
// the template's defaults for every setting (DATABASE_PROXY's "true", as
// behind RDS Proxy, among them) and local stand-ins for what only a
// deployment knows: the database URL instead of its secret, the local
// queue, bus and token issuer. Any other template variable set in the
// stack's own environment (getenv) overrides its default there:
// DATABASE_PROXY=false make dev runs pgx in its default mode. Beside them come the variables
// only local runs set: the AWS SDK's endpoints and credentials, the HS256
// secret of the local tokens, Stripe's key and stripe-mock's address, and
// the billing run's clock override, and webhooks allowed to loopback.
func functionEnv(fn *samtemplate.Function, getenv func(string) string, region string, st *State) []string {
	local := map[string]string{
		"DATABASE_URL":     st.DatabaseURL,
		"USAGE_QUEUE_URL":  st.QueueURL,
		"DLQ_URL":          st.DLQURL,
		"NOTIFY_QUEUE_URL": st.NotifyQueueURL,
		"ALERT_BUS_NAME":   st.AlertBus,
		"JWT_ISSUER":       seed.JWTIssuer,
		"JWT_AUDIENCE":     seed.JWTAudience,
	}
	env := rie.BaseEnv()
	names := make([]string, 0, len(fn.Env))
	for name := range fn.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v, ok := local[name], true
		if v == "" {
			v = getenv(name)
		}
		if v == "" {
			v, ok = fn.Env[name].Default, !fn.Env[name].Deployed
		}
		if ok {
			env = append(env, name+"="+v)
		}
	}
	env = append(env,
		"AWS_REGION="+region,
		"AWS_DEFAULT_REGION="+region,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL="+st.SQSEndpoint,
		"AWS_ENDPOINT_URL_SQS="+st.SQSEndpoint,
		"JWT_HMAC_SECRET="+seed.JWTSecret,
		// The local stack may replay a billing run at an instant of its
		// choosing (the overage payload's "now"); AWS never can.
		"ALLOW_CLOCK_OVERRIDE=true",
		// Webhook endpoints may be http and loopback here: the local
		// receiver. AWS never sets it.
		"WEBHOOK_ALLOW_PRIVATE=true",
	)
	if st.StripeURL != "" {
		env = append(env, "STRIPE_API_KEY=sk_test_123", "STRIPE_API_URL="+st.StripeURL)
	}
	return env
}
