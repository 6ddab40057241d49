package httpauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func signed(t *testing.T, key string, at time.Time, mutate func(*http.Request)) *http.Request {
	t.Helper()
	req := httptest.NewRequest("PATCH", "http://services/internal/v1/uploads/abc?x=1", strings.NewReader("body"))
	req.Header.Set("Depot-Offset", "8388608")
	req.Header.Set("Depot-User-Token", "dpt_secret")
	req.Header.Set("Depot-Permission", "upload")
	Sign(req, []byte(key), at)
	if mutate != nil {
		mutate(req)
	}
	return req
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	old, cur := "old-key-0123456789abcdef", "new-key-0123456789abcdef"
	v := NewVerifier([]string{old, cur}, time.Minute, clock)

	cases := []struct {
		name string
		req  *http.Request
		want error
	}{
		{"current key", signed(t, cur, now, nil), nil},
		{"previous key during rotation", signed(t, old, now, nil), nil},
		{"unknown key", signed(t, "some-other-key-0123456789", now, nil), ErrBadSig},
		{"missing", httptest.NewRequest("GET", "/internal/v1/object", nil), ErrMissing},
		{"too old", signed(t, cur, now.Add(-2*time.Minute), nil), ErrSkew},
		{"from the future", signed(t, cur, now.Add(2*time.Minute), nil), ErrSkew},
		{"offset altered", signed(t, cur, now, func(r *http.Request) { r.Header.Set("Depot-Offset", "0") }), ErrBadSig},
		{"token swapped", signed(t, cur, now, func(r *http.Request) { r.Header.Set("Depot-User-Token", "dpt_other") }), ErrBadSig},
		{"path altered", signed(t, cur, now, func(r *http.Request) { r.URL.Path = "/internal/v1/uploads/abd" }), ErrBadSig},
		{"method altered", signed(t, cur, now, func(r *http.Request) { r.Method = "DELETE" }), ErrBadSig},
		{"length altered", signed(t, cur, now, func(r *http.Request) { r.ContentLength = 5 }), ErrBadSig},
		{"garbage", signed(t, cur, now, func(r *http.Request) { r.Header.Set(Header, "v2 ts=1 nonce=zz") }), ErrMalformed},
		{"older scheme", signed(t, cur, now, func(r *http.Request) { r.Header.Set(Header, "v1 ts=1 nonce=zz sig=00") }), ErrScheme},
		{"permission removed", signed(t, cur, now, func(r *http.Request) { r.Header.Del("Depot-Permission") }), ErrBadSig},
		{"header added", signed(t, cur, now, func(r *http.Request) { r.Header.Set("Depot-Resume", "1") }), ErrBadSig},
	}
	for _, tc := range cases {
		if err := v.Verify(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestReplayRefused(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier([]string{"key-0123456789abcdef"}, time.Minute, func() time.Time { return now })
	req := signed(t, "key-0123456789abcdef", now, nil)
	if err := v.Verify(req); err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(req.Context())
	if err := v.Verify(replay); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay within the window: %v", err)
	}
	now = now.Add(3 * time.Minute)
	if err := v.Verify(replay); !errors.Is(err, ErrSkew) {
		t.Fatalf("replay after the window: %v", err)
	}
}
