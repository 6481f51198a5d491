// Package tsclient runs the tests of the TypeScript package @nexus/usage
// (clients/typescript) and of its Next.js example (examples/nextjs) inside
// go test, each against a local stack of its own (package devstack, as
// make dev runs it, with a 1 s batching window): npm ci from the committed
// lockfiles, the package's build, its node:test suite, then next build,
// next start and the example's traffic. Node.js 20.9 or later and npm are
// needed: without them the tests skip, except under CI=true, where they
// fail.
//
// By hand, against a running make dev:
//
//	cd clients/typescript && npm ci && npm run build && NEXUS_DEV_ADMIN=http://127.0.0.1:8081 npm test
//	cd examples/nextjs && npm ci && NEXUS_DEV_ADMIN=http://127.0.0.1:8081 npm test
package tsclient
