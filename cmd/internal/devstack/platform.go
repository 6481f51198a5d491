package devstack

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/seed"
)

// servePlatform serves the sample platform API behind the real metering:
// shared/meter over the stack's database (API keys, the limiter's state)
// and its usage queue, as a platform team deploys it. Stop closes it after
// the servers stopped, which sends the usage events still buffered.
func (s *Stack) servePlatform(ctx context.Context) error {
	api, err := platform.New(ctx, platform.Config{DatabaseURL: s.state.DatabaseURL, SQS: moto.SQS(s.state.SQSEndpoint, s.cfg.Region),
		QueueURL: s.state.QueueURL, JWT: seed.JWTConfig(), FlushInterval: s.cfg.PlatformFlush, Logger: s.logger})
	if err != nil {
		return fmt.Errorf("sample platform API: %w", err)
	}
	s.platform = api
	url, err := s.serve(s.cfg.PlatformAddr, api)
	if err != nil {
		return fmt.Errorf("sample platform API: %w", err)
	}
	s.state.PlatformURL = url
	s.state.PlatformFlushSeconds = s.cfg.PlatformFlush.Seconds()
	return nil
}

// closePlatform sends the sample API's buffered usage events and closes
// its pool.
func (s *Stack) closePlatform() {
	if s.platform == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.platform.Close(ctx); err != nil {
		s.logger.Error("sample platform API: usage events not sent at stop", "error", err)
	}
}
