package httpauth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// TestCheckKey: fresh random keys in every accepted encoding pass (never
// a false refusal in 20,000 tries), and keys of low entropy are refused
// with a message that does not repeat them.
func TestCheckKey(t *testing.T) {
	for i := range 20000 {
		b := make([]byte, MinKeyBytes+i%33)
		rand.Read(b)
		for _, k := range []string{
			hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)), base64.StdEncoding.EncodeToString(b),
			base64.RawURLEncoding.EncodeToString(b),
		} {
			if err := CheckKey(k); err != nil {
				t.Fatalf("a random key of %d bytes refused: %v", len(b), err)
			}
		}
	}
	if err := CheckKey(NewKey()); err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i)
	}
	short := make([]byte, 24)
	rand.Read(short)
	half := make([]byte, 16)
	rand.Read(half)
	for name, k := range map[string]string{
		"one letter, 16 characters":        strings.Repeat("a", 16),
		"one letter, 64 characters":        strings.Repeat("a", 64),
		"one digit, 64 characters":         strings.Repeat("1", 64),
		"sixteen bytes of hex":             "0123456789abcdef0123456789abcdef",
		"a pattern repeated":               strings.Repeat("0123456789abcdef", 4),
		"a counting sequence":              hex.EncodeToString(seq),
		"24 random bytes":                  hex.EncodeToString(short),
		"16 random bytes twice":            hex.EncodeToString(append(half, half...)),
		"a pass phrase":                    "correct horse battery staple correct horse battery staple",
		"text that decodes as base64":      "thisisaverylongpassphrasewithoutanyspacesatallforsure",
		"all zero bytes in base64":         base64.StdEncoding.EncodeToString(make([]byte, 48)),
		"not an encoding":                  "!!!!" + NewKey(),
		"ffffffffffffffffffffffffffffffff": "ffffffffffffffffffffffffffffffff",
	} {
		err := CheckKey(k)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), k) {
			t.Errorf("%s: the message repeats the key", name)
		}
	}
}
