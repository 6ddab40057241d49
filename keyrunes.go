package depot

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The characters of the key policy (ValidateKey) that are refused wherever
// they appear in a key.

// invisible are characters that show as nothing (or as a blank) without
// being format characters (category Cf, refused as a class): the combining
// grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
// variation selectors and the Braille blank. Variation selectors U+FE00–
// U+FE0F stay allowed: emoji need them.
var invisible = map[rune]bool{
	0x034F: true, 0x115F: true, 0x1160: true, 0x17B4: true, 0x17B5: true,
	0x180B: true, 0x180C: true, 0x180D: true, 0x180F: true, 0x2800: true,
	0x3164: true, 0xFFA0: true,
}

// lookalikes look like ".", "/" or "\" but are not, and Unicode
// compatibility normalisation (NFKC) does not map them to those (the ones
// it maps, such as the fullwidth dot U+FF0E or the fullwidth solidus
// U+FF0F, are caught by it): "a∕b" shows as a path "a/b", "．．" as "..",
// "report․csv" as "report.csv". From Unicode's confusables for U+002E,
// U+002F and U+005C, leaving out letters and ideographs that are words of
// their own scripts.
var lookalikes = map[rune]bool{
	// dots
	0x0701: true, 0x0702: true, 0x2024: true, 0x2025: true, 0x2026: true, 0xA4F8: true,
	0xA60E: true, 0xFE52: true, 0xFF0E: true, 0x10A50: true, 0x1D16D: true,
	// slashes
	0x0338: true, 0x1735: true, 0x2044: true, 0x2215: true, 0x2571: true, 0x27CB: true,
	0x29F8: true, 0x3033: true, 0xFF0F: true,
	// backslashes
	0x2216: true, 0x2572: true, 0x27CD: true, 0x29F5: true, 0x29F9: true, 0xFE68: true, 0xFF3C: true,
}

// checkRune refuses a character that has no place in a key, saying why.
func checkRune(r rune) error {
	if r < utf8.RuneSelf {
		switch {
		case r < 0x20 || r == 0x7F:
			return Errorf(CodeInvalidPath, "path contains a control character")
		case r == '\\':
			return Errorf(CodeInvalidPath, "path contains a backslash")
		}
		return nil
	}
	switch {
	case r == utf8.RuneError:
		return Errorf(CodeInvalidPath, "path is not valid UTF-8")
	case unicode.Is(unicode.Cc, r):
		return Errorf(CodeInvalidPath, "path contains a control character")
	case unicode.Is(unicode.Cf, r) || invisible[r]:
		return Errorf(CodeInvalidPath, "path contains an invisible or formatting character (such as a zero-width space or a right-to-left override)")
	case unicode.In(r, unicode.Zl, unicode.Zp):
		return Errorf(CodeInvalidPath, "path contains a line or paragraph separator")
	case noncharacter(r):
		return Errorf(CodeInvalidPath, "path contains a Unicode noncharacter")
	case lookalikes[r] || compatLookalike(r):
		return Errorf(CodeInvalidPath, "path contains a character that looks like a dot, a slash or a backslash (such as a fullwidth dot or a division slash); use the plain character")
	}
	return nil
}

// compatLookalike reports whether r, not a letter or a digit, is a
// compatibility form of text with a dot, a slash or a backslash (U+FF0E
// "．", U+2488 "⒈", U+2100 "℀").
func compatLookalike(r rune) bool {
	if unicode.IsLetter(r) || unicode.IsDigit(r) {
		return false
	}
	return strings.ContainsAny(norm.NFKC.String(string(r)), `./\`)
}

// noncharacter reports whether r is one of Unicode's 66 noncharacters.
func noncharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE
}

// isSpace reports whether r is a space: U+0020 or another space separator
// (no-break space, ideographic space, …).
func isSpace(r rune) bool { return r == ' ' || unicode.Is(unicode.Zs, r) }

// reservedDeviceName reports whether seg names a Windows device, whatever
// its case and extension ("con", "NUL.txt", "com1.tar.gz", "LPT¹"): such a
// file cannot be opened on a Windows client of an SMB export.
func reservedDeviceName(seg string) bool {
	base, _, _ := strings.Cut(seg, ".")
	base = strings.ToUpper(strings.TrimRightFunc(base, isSpace))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	for _, dev := range []string{"COM", "LPT"} {
		if rest, ok := strings.CutPrefix(base, dev); ok {
			if r, n := utf8.DecodeRuneInString(rest); n == len(rest) && (r >= '0' && r <= '9' || r == '¹' || r == '²' || r == '³') {
				return true
			}
		}
	}
	return false
}
