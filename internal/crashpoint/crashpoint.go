//go:build !crashpoints

// Package crashpoint marks the steps of depot's commit and purge paths
// where a test kills the services process, to prove that a crash between
// any two steps leaves the old state or the new one. In a normal build
// Reach does nothing; built with -tags crashpoints (the end-to-end tests
// do), Reach(name) kills the process with SIGKILL when the environment
// variable DEPOTTEST_CRASH_AT equals name.
package crashpoint

// Reach marks the step name; see the package documentation.
func Reach(name string) {}
