package depot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the key policy.
const (
	MaxKeyBytes     = 1024 // whole key, in bytes
	MaxSegmentBytes = 255  // one path segment, in bytes (a common file system limit)
	ReservedPrefix  = ".depot"
)

// ValidateKey enforces the one key policy of depot. A key is a relative,
// clean, slash-separated path of valid UTF-8: no empty, "." or ".." segment,
// no leading or trailing slash, no NUL, control character or backslash, no
// segment starting with the reserved ".depot" prefix (used for temporary
// files), and bounded length. Violations return an *Error with code
// CodeInvalidPath; the message does not echo the key.
func ValidateKey(key string) error {
	if key == "" {
		return Errorf(CodeInvalidPath, "path is empty")
	}
	if len(key) > MaxKeyBytes {
		return Errorf(CodeInvalidPath, "path is longer than %d bytes", MaxKeyBytes)
	}
	if !utf8.ValidString(key) {
		return Errorf(CodeInvalidPath, "path is not valid UTF-8")
	}
	for _, r := range key {
		if r == 0 || r == '\\' || unicode.IsControl(r) || r == utf8.RuneError {
			return Errorf(CodeInvalidPath, "path contains a forbidden character")
		}
	}
	if strings.HasPrefix(key, "/") {
		return Errorf(CodeInvalidPath, "path must be relative")
	}
	for _, seg := range strings.Split(key, "/") {
		if err := validateSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

func validateSegment(seg string) error {
	switch {
	case seg == "":
		return Errorf(CodeInvalidPath, "path has an empty segment or a trailing slash")
	case seg == "." || seg == "..":
		return Errorf(CodeInvalidPath, "path has a relative segment")
	case len(seg) > MaxSegmentBytes:
		return Errorf(CodeInvalidPath, "a path segment is longer than %d bytes", MaxSegmentBytes)
	case strings.HasPrefix(seg, ReservedPrefix):
		return Errorf(CodeInvalidPath, "path segments may not start with %q", ReservedPrefix)
	}
	return nil
}

// ValidatePrefix checks a listing prefix: "" (everything) or a key followed by
// an optional trailing slash.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}
