package depot

import (
	"path"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// refusedRunes are characters that must never be part of an accepted key,
// listed here independently of the policy's own tables.
var refusedRunes = []rune{
	'\\', 0x00, 0x1F, 0x7F, 0x85, 0x200B, 0x200C, 0x200D, 0x200E, 0x202A, 0x202E, 0x2066, 0x2069, 0xFEFF,
	0x00AD, 0x2028, 0x2029, 0xFFFE, 0xFF0E, 0xFF0F, 0xFF3C, 0x2215, 0x2044, 0x2024, 0x2025, 0x2026,
	0xFE52, 0x29F8, 0x2216, 0x3164,
}

var deviceName = regexp.MustCompile(`(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])( *)(\.|$)`)

// FuzzValidateKey checks the key policy's promise: whatever it accepts is a
// relative, clean path in NFC that cannot climb out of a directory, holds
// no control, invisible or lookalike character, and names nothing Windows
// reserves; CleanKey's result is such a key and CleanKey is idempotent; it
// never panics.
func FuzzValidateKey(f *testing.F) {
	for _, seed := range []string{
		"c1/a.csv", "c1/dir/b.tsv", "..", "a/../b", "/abs", "a//b", "a/", "a\\b", "a\x00b", "\xff",
		"a/./b", ".depot-part-x", "c1/.depot/x", strings.Repeat("a", 300), "ünïcode/名前.csv", "a b/c d",
		"c1/cafe\u0301.csv", "c1/caf\u00e9.csv", "c1/\u202egpj.exe", "c1/a\u200bb", "c1/\uff0e\uff0e", "c1/a\u2215b",
		"c1/   ", "c1/a.", "c1/a ", "c1/CON", "c1/nul.txt", "c1/Com1.tar.gz", "c1/lpt\u00b9", "c1/con a.txt",
		"c1/a\u2024csv", "c1/\u2025", "c1/\u00bd.csv", "c1/emoji\u2764\ufe0f.txt", "c1/\u3000x", "c1/x\u00a0",
	} {
		f.Add(seed)
	}
	messages := map[string]bool{}
	for _, bad := range []string{
		"", strings.Repeat("a/", 600), "\xff", "a\x01", "a\\b", "a\u200bb", "a\u2028b", "a\ufdd0", "a\u2215b", "cafe\u0301",
		"/abs", "a//b", "a/./b", strings.Repeat("a", 300), ".depot", "   ", "a.", "CON",
	} {
		if err := ValidateKey(bad); err != nil {
			messages[ErrorMessage(err)] = true
		}
	}
	f.Fuzz(func(t *testing.T, key string) {
		if cleaned, err := CleanKey(key); err == nil {
			if ValidateKey(cleaned) != nil {
				t.Fatalf("%q: CleanKey gave %q, which ValidateKey refuses", key, cleaned)
			}
			if again, err := CleanKey(cleaned); err != nil || again != cleaned {
				t.Fatalf("%q: CleanKey is not idempotent: %q, then %q (%v)", key, cleaned, again, err)
			}
			if cleaned != norm.NFC.String(key) {
				t.Fatalf("%q: CleanKey gave %q, not the key's NFC form", key, cleaned)
			}
		} else if ErrorCode(err) != CodeInvalidPath {
			t.Fatalf("%q: CleanKey code %s", key, ErrorCode(err))
		}
		if err := ValidateKey(key); err != nil {
			if ErrorCode(err) != CodeInvalidPath {
				t.Fatalf("%q: code %s", key, ErrorCode(err))
			}
			// The message is one of the policy's fixed sentences: it never
			// echoes the key.
			if !messages[ErrorMessage(err)] {
				t.Fatalf("%q: message %q is not one of the policy's fixed messages", key, ErrorMessage(err))
			}
			return
		}
		if !utf8.ValidString(key) || len(key) > MaxKeyBytes {
			t.Fatalf("%q accepted: invalid UTF-8 or too long", key)
		}
		if !norm.NFC.IsNormalString(key) {
			t.Fatalf("%q accepted but not in NFC", key)
		}
		if path.Clean(key) != key || path.IsAbs(key) || strings.HasPrefix(key, "../") || key == ".." {
			t.Fatalf("%q accepted but not clean and relative", key)
		}
		for _, r := range key {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) || strings.ContainsRune(string(refusedRunes), r) {
				t.Fatalf("%q accepted with the refused character %U", key, r)
			}
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ReservedPrefix) || len(seg) > MaxSegmentBytes {
				t.Fatalf("%q accepted with segment %q", key, seg)
			}
			if strings.TrimFunc(seg, unicode.IsSpace) == "" || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
				t.Fatalf("%q accepted with a blank segment or one ending in a dot or space: %q", key, seg)
			}
			if deviceName.MatchString(seg) {
				t.Fatalf("%q accepted with the Windows device name %q", key, seg)
			}
		}
	})
}

// TestKeyPolicyNames checks the names the outside review found accepted:
// each is refused with a message that says why, and NFD input is the same
// key as NFC input.
func TestKeyPolicyNames(t *testing.T) {
	nfc, err1 := CleanKey("c1/caf\u00e9.csv")
	nfd, err2 := CleanKey("c1/cafe\u0301.csv")
	if err1 != nil || err2 != nil || nfc != nfd || nfc != "c1/caf\u00e9.csv" {
		t.Fatalf("NFC and NFD café.csv: %q (%v) and %q (%v), want the same NFC key", nfc, err1, nfd, err2)
	}
	if err := ValidateKey("c1/cafe\u0301.csv"); err == nil || !strings.Contains(ErrorMessage(err), "NFC") {
		t.Errorf("ValidateKey of an NFD key: %v, want a refusal naming NFC", err)
	}
	for _, tc := range []struct{ key, why string }{
		{"c1/\u202egpj.exe", "invisible or formatting"},
		{"c1/a\u200bb.csv", "invisible or formatting"},
		{"c1/\ufeffa.csv", "invisible or formatting"},
		{"c1/\u3164.csv", "invisible or formatting"},
		{"c1/\uff0e\uff0e", "looks like a dot"},
		{"c1/\u2025", "looks like a dot"},
		{"c1/report\u2024csv", "looks like a dot"},
		{"c1/a\u2215b", "looks like a dot, a slash"},
		{"c1/a\u2044b", "looks like a dot, a slash"},
		{"c1/a\uff0fb", "looks like a dot, a slash"},
		{"c1/a\u2216b", "looks like a dot, a slash"},
		{"c1/   ", "only of spaces"},
		{"c1/\u3000", "only of spaces"},
		{"c1/a.", "ends with a dot or a space"},
		{"c1/a...", "ends with a dot or a space"},
		{"c1/a ", "ends with a dot or a space"},
		{"c1/dir./b", "ends with a dot or a space"},
		{"c1/CON", "reserved by Windows"},
		{"c1/nul.txt", "reserved by Windows"},
		{"c1/Com1.tar.gz", "reserved by Windows"},
		{"c1/LPT9", "reserved by Windows"},
		{"c1/lpt\u00b9.csv", "reserved by Windows"},
		{"c1/aux /x", "ends with a dot or a space"},
		{"c1/con .txt", "reserved by Windows"},
		{"c1/a\u2028b", "line or paragraph separator"},
		{"c1/a\x1bb", "control character"},
		{"c1/a\u0085b", "control character"},
		{"c1/a\ufdd0b", "noncharacter"},
	} {
		_, err := CleanKey(tc.key)
		if err == nil || ErrorCode(err) != CodeInvalidPath || !strings.Contains(ErrorMessage(err), tc.why) {
			t.Errorf("%q: %v, want invalid_path saying %q", tc.key, err, tc.why)
		}
	}
	for _, ok := range []string{
		"c1/console.log", "c1/COM10", "c1/comx.csv", "c1/a.b.c", "c1/.hidden", "c1/ leading",
		"c1/名前.csv", "c1/\u0661\u0660\u0660.csv", "c1/emoji\u2764\ufe0f.txt", "c1/Catalan l\u00b7l.txt", "c1/a\u00a0b",
	} {
		if _, err := CleanKey(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
