// Package awsconfig resolves a function's configuration from its
// environment the way the template sets it up: plain values locally, secrets
// by ARN from Secrets Manager in AWS. Standard AWS variables
// (AWS_ENDPOINT_URL, ...) redirect the SDK to local emulators.
//
//	url, err := awsconfig.DatabaseURL(ctx, os.Getenv)
//	if err != nil { ... }
//	db, err := postgres.Open(ctx, postgres.Config{URL: url})
package awsconfig
