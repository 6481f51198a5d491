// Package gateway is the local stand-in for an API Gateway HTTP API: an
// http.Handler that matches a request against the template's routes, builds
// the payload-format-2.0 event (events.APIGatewayV2HTTPRequest) with path
// parameters, cookies and a base64 body where API Gateway would, enforces
// the JWT authorizer on the routes behind it (passing the token's claims
// as requestContext.authorizer.jwt), invokes the function and writes its
// APIGatewayV2HTTPResponse back. Its own errors are API Gateway's
// {"message": …} answers.
//
//	v, err := auth.NewJWTVerifier(seed.JWTConfig())
//	if err != nil { ... }
//	fn := tmpl.Function("analytics")
//	gw := &gateway.Gateway{Routes: fn.Routes, Function: lambda, Verifier: v, Logger: logger}
//	err = http.ListenAndServe("127.0.0.1:8080", gw)
package gateway
