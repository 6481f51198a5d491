package devstack

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/seed"
)

// Config configures the local stack. Only Root is required.
type Config struct {
	Root         string // the module's root directory
	Template     string // template.yaml, relative to Root (the default)
	Addr         string // local API Gateway (default 127.0.0.1:8080)
	AdminAddr    string // state and run-now endpoint (default 127.0.0.1:8081)
	PlatformAddr string // the sample platform API (default 127.0.0.1:8090)
	ReceiverAddr string // the webhook receiver (default 127.0.0.1:8091)
	DatabaseName string // created on the throwaway server (default nexus_dev)
	Stage        string // default dev
	Region       string // default us-east-1
	// BatchWindow is the SQS batching window (default 5s, as deployed).
	BatchWindow time.Duration
	// PlatformFlush is the sample platform API's publisher flush interval
	// (default platform.DefaultFlushInterval).
	PlatformFlush time.Duration
	// VisibilityTimeout is the usage queue's (default 60s): how long a
	// batch that failed (its function killed, the database down) stays
	// invisible before SQS delivers it again. Keep it above BatchWindow
	// and above the function's longest batch.
	VisibilityTimeout time.Duration
	// FunctionLog receives the functions' output, without the emulator's
	// per-invocation chatter; nil discards it.
	FunctionLog io.Writer
	// FunctionEnv are variables ("NAME=value") every function gets on top
	// of the stack's, e.g. a compressed redelivery schedule for the soak
	// (REDELIVERY_BASE, REDELIVERY_MAX).
	FunctionEnv []string
	// Env reads the environment (default os.Getenv).
	Env func(string) string
	// Start is when the user started the stack, for the ready time
	// (default: when Start is called).
	Start time.Time
	// Bootstraps is a directory holding the functions' binaries, built
	// before the stack starts (make dev and make test: $NEXUS_LAMBDA_DIR);
	// empty, or a binary missing there, means the stack builds them.
	Bootstraps string
}

func (c Config) withDefaults() Config {
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&c.Template, "template.yaml")
	set(&c.Addr, "127.0.0.1:8080")
	set(&c.AdminAddr, "127.0.0.1:8081")
	set(&c.PlatformAddr, "127.0.0.1:8090")
	set(&c.ReceiverAddr, "127.0.0.1:8091")
	set(&c.DatabaseName, "nexus_dev")
	set(&c.Stage, "dev")
	set(&c.Region, "us-east-1")
	if c.BatchWindow <= 0 {
		c.BatchWindow = 5 * time.Second
	}
	if c.PlatformFlush <= 0 {
		c.PlatformFlush = platform.DefaultFlushInterval
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = 60 * time.Second
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
	if c.Env == nil {
		c.Env = os.Getenv
	}
	return c
}

// State is what a running stack tells its users (GET /state on the admin
// endpoint): endpoints, demo users and their credentials.
type State struct {
	GatewayURL  string `json:"gateway_url"`
	AdminURL    string `json:"admin_url"`
	PlatformURL string `json:"platform_url"` // the sample platform API
	DatabaseURL string `json:"database_url"`
	SQSEndpoint string `json:"sqs_endpoint"`
	Region      string `json:"region"`
	QueueURL    string `json:"queue_url"`
	DLQURL      string `json:"dlq_url"`
	AlertBus    string `json:"alert_bus,omitempty"`
	// NotifyQueueURL and NotifyDLQURL are the deliver function's queue
	// (its retry engine) and its DLQ.
	NotifyQueueURL string `json:"notify_queue_url"`
	NotifyDLQURL   string `json:"notify_dlq_url"`
	// ReceiverURL is the local webhook receiver, a platform endpoint of
	// every event: it verifies each webhook's signature and prints it;
	// GET /webhooks on the admin endpoint lists what it got.
	ReceiverURL string            `json:"receiver_url,omitempty"`
	StripeURL   string            `json:"stripe_url,omitempty"`
	JWTIssuer   string            `json:"jwt_issuer"`
	JWTAudience string            `json:"jwt_audience"`
	Functions   map[string]string `json:"functions"` // name → running, build failed, failed to start
	Users       []seed.User       `json:"users"`
	Admin       seed.User         `json:"admin"`
	// ClosedPeriod is the month (YYYY-MM) in which the demo users' last
	// closed billing period starts: the period overage bills.
	ClosedPeriod string `json:"closed_period"`
	// BatchWindowSeconds is the usage queue's batching window and
	// PlatformFlushSeconds the sample API publisher's flush interval: the
	// two waits of the lag from a metered request to its count.
	BatchWindowSeconds   float64 `json:"batch_window_seconds"`
	PlatformFlushSeconds float64 `json:"platform_flush_seconds"`
}

// The names of the local queues and bus, as the template names them for
// the stage.
func queueName(stage string) string     { return "nexus-usage-" + stage }
func dlqName(stage string) string       { return "nexus-usage-dlq-" + stage }
func busName(stage string) string       { return "nexus-alerts-" + stage }
func notifyName(stage string) string    { return "nexus-usage-notify-" + stage }
func notifyDLQName(stage string) string { return "nexus-usage-notify-dlq-" + stage }

// ModuleRoot finds the module's root directory (the one holding its
// go.mod) from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/nexus/usage") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the nexus usage module (no go.mod found)")
		}
		dir = parent
	}
}
