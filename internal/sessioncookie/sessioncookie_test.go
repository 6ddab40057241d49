package sessioncookie

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

const (
	secretA = "0123456789abcdef0123456789abcdef-a"
	secretB = "0123456789abcdef0123456789abcdef-b"
)

func TestSealOpen(t *testing.T) {
	a, err := New([]string{secretA})
	if err != nil {
		t.Fatal(err)
	}
	in := Session{IDToken: "eyJ.x.y", Refresh: "r", IDExpiry: 10, Expiry: 20, SignedIn: 5, CSRF: "c"}
	v, err := a.Seal(SessionName, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "eyJ") {
		t.Fatal("the sealed value shows the ID token")
	}
	var out Session
	if err := a.Open(SessionName, v, &out); err != nil || out != in {
		t.Fatalf("Open = %+v, %v", out, err)
	}
	// Two seals of the same session differ (random nonce).
	if v2, _ := a.Seal(SessionName, in); v2 == v {
		t.Fatal("sealing is deterministic")
	}

	// Every byte flipped, truncation, another cookie's name, garbage: refused.
	raw := []byte(v)
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		if a.Open(SessionName, string(b), &out) == nil {
			t.Fatalf("flipping byte %d was accepted", i)
		}
	}
	for _, bad := range []string{"", v[:len(v)-1], v[:10], "!!!", "AQ"} {
		if err := a.Open(SessionName, bad, &out); err != ErrInvalid {
			t.Fatalf("Open(%q) = %v", bad, err)
		}
	}
	if err := a.Open(LoginName, v, &out); err != ErrInvalid {
		t.Fatalf("a session value was accepted as a login value: %v", err)
	}

	// Rotation: a codec with [B, A] opens A's values and seals with B; a codec
	// with only B does not open A's.
	ba, err := New([]string{secretB, secretA})
	if err != nil {
		t.Fatal(err)
	}
	if err := ba.Open(SessionName, v, &out); err != nil {
		t.Fatalf("rotated codec refused the old secret's cookie: %v", err)
	}
	vb, _ := ba.Seal(SessionName, in)
	b, _ := New([]string{secretB})
	if err := b.Open(SessionName, vb, &out); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(SessionName, v, &out); err != ErrInvalid {
		t.Fatalf("a codec without secret A opened A's cookie: %v", err)
	}
	if err := a.Open(SessionName, vb, &out); err != ErrInvalid {
		t.Fatalf("a codec without secret B opened B's cookie: %v", err)
	}

	for _, bad := range [][]string{nil, {"short"}, {secretA, "short"}} {
		if _, err := New(bad); err == nil {
			t.Fatalf("New(%q) accepted", bad)
		}
	}
}

func FuzzOpen(f *testing.F) {
	// sealedX is Session{IDToken: "x"} sealed with secretA once, written down
	// so that every fuzz worker knows the one value that must open.
	const sealedX = "AUpTuBYbVanbyO347-wUMBL9WPZivWcL5lfe4h4RGrPWGaqZNlBf-xmX-ZXvfcHo-zuw1tBxR08_vy2elce6"
	c, _ := New([]string{secretA})
	v := sealedX
	if err := c.Open(SessionName, v, &Session{}); err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		var out Session
		if c.Open(SessionName, s, &out) == nil && !sameBytes(s, v) {
			// Only values sealed by the secret open; a fuzzer cannot forge GCM.
			t.Fatalf("opened a value that was not sealed: %q", s)
		}
	})
}

// sameBytes reports whether two encodings decode to the same bytes (the
// decoder skips line breaks).
func sameBytes(a, b string) bool {
	x, err1 := base64.RawURLEncoding.Strict().DecodeString(a)
	y, err2 := base64.RawURLEncoding.Strict().DecodeString(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
