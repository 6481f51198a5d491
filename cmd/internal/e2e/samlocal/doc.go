// Package samlocal runs what ships through the real SAM CLI: its tests
// validate and build template.yaml as a deployment would (sam validate
// --lint, sam build: the four linux/arm64 bootstraps), invoke each function
// with its sample event from events/ (sam local invoke) and serve the HTTP
// API once (sam local start-api), with the template's defaults (pgx as
// behind RDS Proxy among them) against the test services.
//
// sam local runs each function in a container: make test's harness
// (scripts/with-services.sh, service podman) serves podman's Docker API,
// registers qemu for the arm64 functions and provides the Lambda base image
// (NEXUS_TEST_DOCKER_HOST, NEXUS_TEST_LAMBDA_IMAGE). A function in its
// container reaches the host only through its mounted directory, so the
// tests put Unix sockets there that forward to PostgreSQL and stripe-mock
// on the host's loopback (Forward).
package samlocal
