package depot

import (
	"path"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValidateKey checks the key policy's promise: whatever it accepts is a
// relative, clean path that cannot climb out of a directory, and it never
// panics.
func FuzzValidateKey(f *testing.F) {
	for _, seed := range []string{
		"c1/a.csv", "c1/dir/b.tsv", "..", "a/../b", "/abs", "a//b", "a/", "a\\b", "a\x00b", "\xff",
		"a/./b", ".depot-part-x", "c1/.depot/x", strings.Repeat("a", 300), "ünïcode/名前.csv", "a b/c d",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if err := ValidateKey(key); err != nil {
			if ErrorCode(err) != CodeInvalidPath {
				t.Fatalf("%q: code %s", key, ErrorCode(err))
			}
			// The message may name the reserved prefix itself, never the key.
			if strings.Contains(ErrorMessage(err), key) && key != "" && !strings.Contains(strconv.Quote(ReservedPrefix), key) {
				t.Fatalf("%q: the message echoes the key", key)
			}
			return
		}
		if !utf8.ValidString(key) || len(key) > MaxKeyBytes {
			t.Fatalf("%q accepted: invalid UTF-8 or too long", key)
		}
		if path.Clean(key) != key || path.IsAbs(key) || strings.HasPrefix(key, "../") || key == ".." {
			t.Fatalf("%q accepted but not clean and relative", key)
		}
		if strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("%q accepted with a backslash or NUL", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ReservedPrefix) || len(seg) > MaxSegmentBytes {
				t.Fatalf("%q accepted with segment %q", key, seg)
			}
		}
	})
}
