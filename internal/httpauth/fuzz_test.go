package httpauth

import (
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary signature headers and signed headers to the
// verifier: it must never panic and never accept a request it did not see
// signed with its key.
func FuzzVerify(f *testing.F) {
	f.Add("v1 ts=1800000000 nonce=00112233445566778899aabbccddeeff sig=00", "c1/a.csv", "0")
	f.Add("v1 ts=x nonce=y sig=z", "", "")
	f.Add("", "k", "-1")
	f.Add("v2 a=b", "\x00", "99999999999999999999")
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier([]string{"fuzz-key-0123456789abcdef"}, time.Minute, func() time.Time { return now })
	f.Fuzz(func(t *testing.T, sig, key, offset string) {
		req := httptest.NewRequest("PATCH", "/internal/v1/uploads/abc", nil)
		req.Header.Set(Header, sig)
		req.Header.Set("Depot-Key", key)
		req.Header.Set("Depot-Offset", offset)
		if err := v.Verify(req); err == nil {
			t.Fatalf("accepted a forged signature %q", sig)
		}
	})
}
