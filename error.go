// Package depot holds the vocabulary shared by every tier of depot: the error
// codes, the storage key policy, the description of a stored object and the
// interfaces that the web and services tiers meet at. It imports only the
// standard library.
package depot

import (
	"errors"
	"fmt"
)

// Code classifies an error for clients. Codes are stable strings that appear in
// JSON error bodies as {"error":{"code":...}} and are mapped to HTTP statuses in
// exactly one place (internal/httpx).
type Code string

// The closed set of error codes.
const (
	CodeInvalid        Code = "invalid_request"   // malformed request
	CodeInvalidPath    Code = "invalid_path"      // a key that breaks the key policy
	CodeNotFound       Code = "not_found"         // no such object, upload or route
	CodeConflict       Code = "conflict"          // state conflict (object exists, upload finished)
	CodeOffsetMismatch Code = "offset_mismatch"   // append at the wrong offset
	CodeSizeMismatch   Code = "size_mismatch"     // body shorter or longer than declared
	CodeHashMismatch   Code = "checksum_mismatch" // SHA-256 differs from the declared one
	CodeTooLarge       Code = "too_large"         // over a configured size limit
	CodeUnauthorized   Code = "unauthorized"      // missing or wrong credentials
	CodeForbidden      Code = "forbidden"         // authenticated, but not allowed
	CodeRangeNotSatisf Code = "range_not_satisfiable"
	CodeTooMany        Code = "too_many_requests"   // rate or concurrency limit hit
	CodeUnavailable    Code = "unavailable"         // a dependency (services, database, storage) is down
	CodeInternal       Code = "internal"            // a bug or an unexpected failure
	CodeStorageFull    Code = "storage_full"        // the storage volume has no room left
	CodePrecondition   Code = "precondition_failed" // an If-Match / If-None-Match condition failed
	CodeNotModified    Code = "not_modified"        // If-None-Match matched: nothing to send
	CodeInfected       Code = "infected"            // the malware scanner found a signature in the upload
)

// Error is an error with a code and a message that is safe to show to a
// client: it never contains internal paths, host names or stack traces. The
// wrapped Err carries the detail for logs.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a client-safe formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and a client-safe message that wraps
// err for logging. err is never shown to clients.
func WrapError(code Code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, or a generic message for any other error.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// OffsetError carries the current offset of an upload session inside a
// CodeOffsetMismatch error.
type OffsetError struct{ Current int64 }

func (e OffsetError) Error() string { return fmt.Sprintf("current offset is %d", e.Current) }

// CurrentOffset extracts the current offset from an offset-mismatch error.
func CurrentOffset(err error) (int64, bool) {
	var oe OffsetError
	if errors.As(err, &oe) {
		return oe.Current, true
	}
	return 0, false
}
