// Package cli wires depot's commands: it parses configuration, builds the
// tiers from their parts and runs them. It holds no business logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"depot"
)

// env is what every command sees of its process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit statuses that scripts can rely on.
const (
	ExitOK          = 0
	ExitFailure     = 1 // the operation failed
	ExitUsage       = 2 // bad flags, arguments or configuration
	ExitAuth        = 3 // not authenticated or not allowed
	ExitNotFound    = 4 // no such file
	ExitUnavailable = 5 // a tier or dependency is down; retry later
	ExitIntegrity   = 6 // a checksum, size or audit-chain check failed
)

// Run runs depot with args and returns the process exit status.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "depot",
		Short:         "depot: a two-tier file system for research data with PHI",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(commands(e)...)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "depot:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	switch depot.ErrorCode(err) {
	case depot.CodeUnauthorized, depot.CodeForbidden:
		return ExitAuth
	case depot.CodeNotFound:
		return ExitNotFound
	case depot.CodeUnavailable:
		return ExitUnavailable
	case depot.CodeHashMismatch, depot.CodeSizeMismatch:
		return ExitIntegrity
	case depot.CodeInvalid, depot.CodeInvalidPath:
		return ExitUsage
	}
	if isUsageError(err) {
		return ExitUsage
	}
	return ExitFailure
}

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument"} {
		if len(msg) >= len(p) && contains(msg, p) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
