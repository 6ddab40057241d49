// Package httpauth signs and verifies internal API requests. The web tier
// never sends the internal key itself: it sends an HMAC-SHA256, keyed with
// the internal key, over the request's method, URI, a timestamp, a random
// nonce and every header that carries meaning (storage key, offset, sizes,
// checksum, the forwarded user token, ...). Services accepts a request only
// if the signature matches one of its keys, the timestamp is within the
// allowed clock skew, and the nonce has not been seen within that window. A
// captured request therefore cannot be replayed, nor altered, nor replayed
// with other headers. Bodies are not signed (they are streamed); their
// integrity is checked by the SHA-256 verified at commit and by TLS.
package httpauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header carries the signature: "v1 ts=<unix seconds> nonce=<hex> sig=<hex>".
const Header = "Depot-Signature"

// SignedHeaders are bound into every signature, in this order. An absent
// header is signed as empty.
var SignedHeaders = []string{
	"Depot-Key", "Depot-Prefix", "Depot-After", "Depot-Offset", "Depot-Size", "Depot-Sha256",
	"Depot-Class", "Depot-User-Token", "Depot-Resume", "Depot-File-Name", "Depot-Request-Id",
	"Depot-Client-Ip", "Depot-User-Agent", "Depot-Web-Node", "Range", "Content-Type", "Depot-Trusted-User",
	"Depot-Version", "Depot-Cohort", "Depot-Permission", "Depot-Crc32c", "Depot-Complete", "Depot-Reason",
	"If-Match", "If-None-Match", "If-Range",
}

// Errors returned by Verify.
var (
	ErrMissing   = errors.New("httpauth: request is not signed")
	ErrMalformed = errors.New("httpauth: malformed signature header")
	ErrSkew      = errors.New("httpauth: timestamp outside the allowed clock skew")
	ErrBadSig    = errors.New("httpauth: signature does not match any key")
	ErrReplay    = errors.New("httpauth: nonce already used (replayed request)")
)

// canonical is the signed string of a request.
func canonical(method, uri string, contentLength int64, ts, nonce string, h http.Header) []byte {
	var b strings.Builder
	b.WriteString("depot-v1\n")
	b.WriteString(method + "\n" + uri + "\n")
	b.WriteString(strconv.FormatInt(contentLength, 10) + "\n")
	b.WriteString(ts + "\n" + nonce + "\n")
	for _, name := range SignedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(h.Get(name))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Sign adds the signature header to req, keyed with key. Call it after every
// other header and req.ContentLength are set.
func Sign(req *http.Request, key []byte, now time.Time) {
	var n [16]byte
	_, _ = rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	ts := strconv.FormatInt(now.Unix(), 10)
	cl := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody {
		cl = 0
	}
	sig := mac(key, canonical(req.Method, req.URL.RequestURI(), cl, ts, nonce, req.Header))
	req.Header.Set(Header, "v1 ts="+ts+" nonce="+nonce+" sig="+hex.EncodeToString(sig))
}

// Verifier checks signatures against a set of keys (two during a rotation).
type Verifier struct {
	keys   [][]byte
	skew   time.Duration
	now    func() time.Time
	mu     sync.Mutex
	seen   map[string]time.Time // nonce → expiry
	purged time.Time
}

// NewVerifier returns a Verifier accepting any of keys, with timestamps at
// most skew away from now (default 60 s).
func NewVerifier(keys []string, skew time.Duration, now func() time.Time) *Verifier {
	if skew <= 0 {
		skew = 60 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{skew: skew, now: now, seen: make(map[string]time.Time)}
	for _, k := range keys {
		v.keys = append(v.keys, []byte(k))
	}
	return v
}

// SetKeys replaces the accepted keys (for a rotation without restart).
func (v *Verifier) SetKeys(keys []string) {
	bs := make([][]byte, 0, len(keys))
	for _, k := range keys {
		bs = append(bs, []byte(k))
	}
	v.mu.Lock()
	v.keys = bs
	v.mu.Unlock()
}

// maxNonces bounds the replay cache; beyond it, requests are refused rather
// than letting memory grow without bound under a flood.
const maxNonces = 1 << 20

// Verify checks r's signature. It reads no body byte.
func (v *Verifier) Verify(r *http.Request) error {
	raw := r.Header.Get(Header)
	if raw == "" {
		return ErrMissing
	}
	ts, nonce, sig, ok := parse(raw)
	if !ok {
		return ErrMalformed
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	now := v.now()
	if d := now.Sub(time.Unix(sec, 0)); d > v.skew || d < -v.skew {
		return ErrSkew
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size || len(nonce) < 16 || len(nonce) > 64 {
		return ErrMalformed
	}
	msg := canonical(r.Method, r.URL.RequestURI(), r.ContentLength, ts, nonce, r.Header)
	match := 0
	v.mu.Lock()
	keys := v.keys
	v.mu.Unlock()
	for _, k := range keys {
		if hmac.Equal(got, mac(k, msg)) {
			match = 1
		}
	}
	if match != 1 {
		return ErrBadSig
	}
	return v.remember(nonce, now)
}

func (v *Verifier) remember(nonce string, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.purged) > v.skew {
		for n, exp := range v.seen {
			if now.After(exp) {
				delete(v.seen, n)
			}
		}
		v.purged = now
	}
	if _, dup := v.seen[nonce]; dup {
		return ErrReplay
	}
	if len(v.seen) >= maxNonces {
		return ErrReplay
	}
	v.seen[nonce] = now.Add(2 * v.skew)
	return nil
}

func parse(raw string) (ts, nonce, sig string, ok bool) {
	fields := strings.Fields(raw)
	if len(fields) != 4 || fields[0] != "v1" {
		return "", "", "", false
	}
	for _, f := range fields[1:] {
		k, val, found := strings.Cut(f, "=")
		if !found {
			return "", "", "", false
		}
		switch k {
		case "ts":
			ts = val
		case "nonce":
			nonce = val
		case "sig":
			sig = val
		default:
			return "", "", "", false
		}
	}
	return ts, nonce, sig, ts != "" && nonce != "" && sig != ""
}
