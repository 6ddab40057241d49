package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
)

// payload returns n deterministic pseudo-random bytes generated on the fly
// (no file on disk) and a function that reports their SHA-256 once read.
func payload(seed uint64, n int64) (io.Reader, func() string) {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	h := sha256.New()
	r := io.TeeReader(io.LimitReader(rand.NewChaCha8(s), n), h)
	return r, func() string { return hex.EncodeToString(h.Sum(nil)) }
}

// payloadBytes returns payload(seed, n) in memory with its SHA-256.
func payloadBytes(seed uint64, n int) ([]byte, string) {
	r, sum := payload(seed, int64(n))
	b, _ := io.ReadAll(r)
	return b, sum()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
