// Package devstack runs the whole system on this machine, as the commands
// under cmd/ share it: the four functions' real bootstraps under the AWS
// Lambda Runtime Interface Emulator (package rie), the local API Gateway in
// front of the HTTP function (package gateway), the sample platform API
// behind the metering middleware (package platform), the SQS poller
// feeding record from moto_server's usage queue (packages sqspoll, moto),
// the scheduler running template.yaml's schedules (package scheduler), the
// demo users (package seed), and an admin endpoint: GET /state (the State
// as JSON), POST /run/{function} (run now), GET /healthz.
//
// The services come from scripts/with-services.sh (make dev, make test):
// PostgreSQL (NEXUS_TEST_DATABASE_URL, NEXUS_TEST_TEMPLATE, or DATABASE_URL),
// moto_server (NEXUS_TEST_SQS_ENDPOINT) and stripe-mock
// (NEXUS_TEST_STRIPE_URL).
//
//	st, err := devstack.Start(ctx, devstack.Config{Root: root, Bootstraps: os.Getenv("NEXUS_LAMBDA_DIR")}, logger)
//	if err != nil { ... } // Start stopped whatever it had started
//	defer st.Stop()
//	st.PrintBanner(os.Stdout)
//	out, err := st.Invoke(ctx, "aggregate", []byte(`{}`))
package devstack
