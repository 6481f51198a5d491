package devstack

import (
	"context"
	"fmt"

	"github.com/nexus/usage/cmd/internal/gateway"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/samtemplate"
)

// serveGateway serves the local API Gateway in front of the function with
// HTTP routes in the template (analytics).
func (s *Stack) serveGateway(context.Context) error {
	verifier, err := auth.NewJWTVerifier(seed.JWTConfig())
	if err != nil {
		return err
	}
	apiFn := "analytics"
	var routes []samtemplate.Route
	for _, fn := range s.tmpl.Functions {
		if len(fn.Routes) > 0 {
			apiFn, routes = fn.Name, append(routes, fn.Routes...)
		}
	}
	gw := &gateway.Gateway{Routes: routes, Verifier: verifier, Logger: s.logger}
	if l := s.lambdas[apiFn]; l != nil {
		gw.Function = l
	}
	url, err := s.serve(s.cfg.Addr, gw)
	if err != nil {
		return fmt.Errorf("local API Gateway: %w", err)
	}
	s.state.GatewayURL = url
	return nil
}
