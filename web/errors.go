package web

import (
	"errors"

	"depot"
)

// localError marks an error raised by the web tier itself, whose message is
// safe to show as is.
type localError struct{ err *depot.Error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// errorf returns a web-originated, client-safe error.
func errorf(code depot.Code, format string, args ...any) error {
	return &localError{err: depot.Errorf(code, format, args...)}
}

// local marks a *depot.Error produced inside the web tier (e.g. by the key
// policy) as safe to show as is.
func local(err error) error {
	var de *depot.Error
	if errors.As(err, &de) {
		return &localError{err: de}
	}
	return err
}

func asLocal(err error, target **localError) bool { return errors.As(err, target) }

// statusError is a refusal with a status of a protocol of its own (tus:
// 412, 415, 460) rather than the status of one of depot's codes.
type statusError struct {
	status int
	code   depot.Code
	msg    string
}

func (e *statusError) Error() string { return e.msg }
