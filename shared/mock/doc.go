// Package mock holds function-field mocks of the usage interfaces that the
// functions and services consume, so that their tests run under a plain
// go test with no database, queue or payment provider. Each mock has one
// field per method, named after it with an Fn suffix, and its method calls
// the field: a test sets the fields its code path needs, and a call to one
// it left nil panics, which fails the test at the unexpected call.
//
// Example sets the one field a code path needs.
//
// The package imports only usage.
package mock
