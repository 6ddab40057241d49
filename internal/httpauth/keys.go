package httpauth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

// MinKeyBytes is the least number of random bytes an internal key must
// encode.
const MinKeyBytes = 32

// NewKey returns a fresh internal key: MinKeyBytes random bytes in hex.
func NewKey() string {
	b := make([]byte, MinKeyBytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckKey refuses an internal key that does not hold at least MinKeyBytes
// random bytes: it must be hex or base64 (standard or URL alphabet, padded
// or not) of at least 32 bytes, and those bytes must look random: a sane
// estimate of their entropy and of the entropy of their successive
// differences, and no short repeating period. A key of one letter
// repeated, a counting sequence, a pattern repeated or plain text is
// refused. The message never repeats the key.
func CheckKey(key string) error {
	raw, ok := decodeKey(key)
	if !ok {
		return fmt.Errorf("an internal key must be hex or base64 encoding %d random bytes or more (generate one with: openssl rand -hex %d)", MinKeyBytes, MinKeyBytes)
	}
	if len(raw) < MinKeyBytes {
		return fmt.Errorf("an internal key must encode %d random bytes or more; this one encodes %d (generate one with: openssl rand -hex %d)", MinKeyBytes, len(raw), MinKeyBytes)
	}
	if !looksRandom(raw) {
		return fmt.Errorf("an internal key must be random bytes; this one repeats or follows a pattern (generate one with: openssl rand -hex %d)", MinKeyBytes)
	}
	return nil
}

// decodeKey decodes hex first (a hex key is valid base64 too), then the
// base64 alphabets.
func decodeKey(key string) ([]byte, bool) {
	if b, err := hex.DecodeString(key); err == nil {
		return b, true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(key); err == nil && !strings.ContainsAny(key, " \t") {
			// Text decoded as base64 gives scattered bytes; its letters
			// do not fill the alphabet as random base64 does.
			text := strings.TrimRight(key, "=")
			if entropy([]byte(text)) < math.Min(math.Log2(float64(len(text))), 6)-1.6 {
				return nil, false
			}
			return b, true
		}
	}
	return nil, false
}

// looksRandom is a cheap test that b is not obviously regular. For n
// random bytes the Shannon entropy of their distribution is close to
// min(log2 n, 8) bits per byte (4.9 of 5 for 32 bytes); it asks for 1.5
// bits less, of the bytes and of their differences (a counting sequence
// has all its bytes distinct but a single difference), and refuses a
// period of half the length or less.
func looksRandom(b []byte) bool {
	want := math.Min(math.Log2(float64(len(b))), 8) - 1.5
	deltas := make([]byte, len(b)-1)
	for i := range deltas {
		deltas[i] = b[i+1] - b[i]
	}
	if entropy(b) < want || entropy(deltas) < want-0.1 {
		return false
	}
	for p := 1; p <= len(b)/2; p++ {
		periodic := true
		for i := 0; i+p < len(b); i++ {
			if b[i] != b[i+p] {
				periodic = false
				break
			}
		}
		if periodic {
			return false
		}
	}
	return true
}

// entropy is the Shannon entropy of b's byte distribution, in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(len(b))
			h -= p * math.Log2(p)
		}
	}
	return h
}
