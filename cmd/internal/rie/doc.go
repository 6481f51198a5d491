// Package rie runs the functions' real bootstrap binaries under the AWS
// Lambda Runtime Interface Emulator (aws-lambda-rie), one emulator process
// per function, as one Lambda execution environment each: Start launches
// it and waits for its invoke endpoint, Invoke posts a payload and returns
// the answer (a handler's error as *FunctionError), InitTimes reports the
// cold start, Stop ends the emulator and the bootstrap. Kill ends an
// execution environment as a crash would (SIGKILL, in mid-invocation if one
// is in flight: InFlight says so), and Restart gives the Lambda a fresh one
// on the same URL, as Lambda starts a new execution environment after a
// failed one.
//
// It also makes the bootstraps: PrebuiltBootstraps finds those make dev and
// make test built beforehand (into $NEXUS_LAMBDA_DIR), and BuildBootstraps
// builds them with HostBuildFlags, the flags of every host build of this
// module.
//
//	path, err := rie.Find(root, os.Getenv)
//	if err != nil { ... }
//	fn, err := rie.Start(ctx, rie.Config{Name: "record", RIE: path, Bootstrap: "bin/record",
//		Env: append(rie.BaseEnv(), "DATABASE_URL="+url), Timeout: 60 * time.Second})
//	if err != nil { ... }
//	defer fn.Stop()
//	out, err := fn.Invoke(ctx, []byte(`{"Records":[]}`))
package rie
