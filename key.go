package depot

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits of the key policy.
const (
	MaxKeyBytes     = 1024 // whole key, in bytes
	MaxSegmentBytes = 255  // one path segment, in bytes (a common file system limit)
	ReservedPrefix  = ".depot"
)

// CleanKey returns key in Unicode normal form C (NFC) if the result passes
// ValidateKey. It is how a key given by a client becomes a storage key: the
// same name typed on different systems (é as one code point, or as e and a
// combining accent, as macOS writes it) is the same file.
func CleanKey(key string) (string, error) {
	if !utf8.ValidString(key) {
		return "", Errorf(CodeInvalidPath, "path is not valid UTF-8")
	}
	key = norm.NFC.String(key)
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// ValidateKey enforces the one key policy of depot. A key is a relative,
// clean, slash-separated path of valid UTF-8 in Unicode normal form C: no
// empty, "." or ".." segment, no leading or trailing slash, no control or
// invisible formatting character (zero-width space, bidi override, …), no
// backslash, no character that looks like a dot, a slash or a backslash
// (fullwidth dot, division slash, one-dot leader, …), no segment that is
// only spaces or ends with a dot or a space, no Windows device name (CON,
// PRN, AUX, NUL, COM0–9, LPT0–9, with or without an extension), no segment
// starting with the reserved ".depot" prefix (used for temporary files),
// and bounded length. Such names cannot be told apart from others in a
// listing or an audit export, or break when the store is exported over SMB
// or NFS to Windows clients. Violations return an *Error with code
// CodeInvalidPath whose message says why; it does not echo the key. Keys
// from clients go through CleanKey, which normalises them first.
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
		if err := checkRune(r); err != nil {
			return err
		}
	}
	if !norm.NFC.IsNormalString(key) {
		return Errorf(CodeInvalidPath, "path is not in Unicode normal form C (NFC)")
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
	case strings.TrimFunc(seg, isSpace) == "":
		return Errorf(CodeInvalidPath, "a path segment consists only of spaces")
	}
	if last, _ := utf8.DecodeLastRuneInString(seg); last == '.' || isSpace(last) {
		return Errorf(CodeInvalidPath, "a path segment ends with a dot or a space (Windows and SMB shares drop them)")
	}
	if reservedDeviceName(seg) {
		return Errorf(CodeInvalidPath, "a path segment is a device name reserved by Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9), with or without an extension")
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
