// Package httpx holds the HTTP plumbing shared by both tiers: the one mapping
// of error codes to statuses, JSON responses, request IDs and server
// construction with timeouts that suit long streaming requests.
package httpx

import (
	"encoding/json"
	"net/http"

	"depot"
)

// StatusOf maps an error code to its HTTP status. It is the only such mapping
// in depot.
func StatusOf(code depot.Code) int {
	switch code {
	case depot.CodeInvalid, depot.CodeInvalidPath, depot.CodeHashMismatch, depot.CodeSizeMismatch:
		return http.StatusBadRequest
	case depot.CodeUnauthorized:
		return http.StatusUnauthorized
	case depot.CodeForbidden:
		return http.StatusForbidden
	case depot.CodeNotFound:
		return http.StatusNotFound
	case depot.CodeConflict, depot.CodeOffsetMismatch:
		return http.StatusConflict
	case depot.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case depot.CodeRangeNotSatisf:
		return http.StatusRequestedRangeNotSatisfiable
	case depot.CodeTooMany:
		return http.StatusTooManyRequests
	case depot.CodeUnavailable:
		return http.StatusServiceUnavailable
	case depot.CodeStorageFull:
		return http.StatusInsufficientStorage
	case depot.CodePrecondition:
		return http.StatusPreconditionFailed
	case depot.CodeNotModified:
		return http.StatusNotModified
	case depot.CodeInfected:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// CodeOfStatus is the inverse of StatusOf for statuses that arrive without a
// JSON error body (for example from a proxy).
func CodeOfStatus(status int) depot.Code {
	switch status {
	case http.StatusBadRequest:
		return depot.CodeInvalid
	case http.StatusUnauthorized:
		return depot.CodeUnauthorized
	case http.StatusForbidden:
		return depot.CodeForbidden
	case http.StatusNotFound:
		return depot.CodeNotFound
	case http.StatusConflict:
		return depot.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return depot.CodeTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		return depot.CodeRangeNotSatisf
	case http.StatusTooManyRequests:
		return depot.CodeTooMany
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return depot.CodeUnavailable
	case http.StatusInsufficientStorage:
		return depot.CodeStorageFull
	case http.StatusPreconditionFailed:
		return depot.CodePrecondition
	case http.StatusUnprocessableEntity:
		return depot.CodeInfected
	}
	return depot.CodeInternal
}

// ErrorBody is the JSON shape of every error response:
// {"error":{"code":"...","message":"..."}}. Offset is set only for
// offset_mismatch errors of the internal API.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    depot.Code `json:"code"`
	Message string     `json:"message"`
	Offset  *int64     `json:"offset,omitempty"`
}

// WriteError writes err as a JSON error with the status of its code. Only the
// client-safe message of a *depot.Error is sent; anything else becomes
// "internal error".
func WriteError(w http.ResponseWriter, err error) {
	code := depot.ErrorCode(err)
	WriteJSON(w, StatusOf(code), ErrorBody{Error: ErrorDetail{Code: code, Message: depot.ErrorMessage(err)}})
}

// WriteErrorDetail writes a prepared error detail.
func WriteErrorDetail(w http.ResponseWriter, d ErrorDetail) {
	WriteJSON(w, StatusOf(d.Code), ErrorBody{Error: d})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
