// Package httpauth signs and verifies internal API requests. The web tier
// never sends the internal key itself: it sends an HMAC-SHA256, keyed with
// the internal key, over the request's method, URI (with its query string),
// content length, a timestamp, a random nonce and every header that can
// change what services does: every Depot-* header and the standard headers
// of SignedStandardHeaders. The set is generic on purpose: a Depot-* header
// added to the internal API later is signed without anyone listing it.
// Services accepts a request only if the signature matches one of its keys,
// the timestamp is within the allowed clock skew, and the nonce has not been
// seen within that window. A captured request therefore cannot be replayed,
// nor altered, nor replayed with a header added, changed or removed. Bodies
// are not signed (they are streamed); their integrity is checked by the
// CRC-32C of each chunk, the SHA-256 verified at commit, and TLS.
package httpauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header carries the signature: "v2 ts=<unix seconds> nonce=<hex> sig=<hex>".
const Header = "Depot-Signature"

// scheme names the canonical form below; v1 signed a fixed list of headers
// and is refused.
const scheme = "v2"

// SignedStandardHeaders are the headers outside Depot-* that are bound into
// every signature: the ones services reads or that change how a body or an
// answer is interpreted.
var SignedStandardHeaders = []string{
	"Content-Type", "Content-Encoding", "Range",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
}

// IsSigned reports whether the header name (any case) is bound into the
// signature: every Depot-* header but the signature itself, and
// SignedStandardHeaders.
func IsSigned(name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	if strings.HasPrefix(name, "Depot-") {
		return name != Header
	}
	return slices.Contains(SignedStandardHeaders, name)
}

// Errors returned by Verify.
var (
	ErrMissing   = errors.New("httpauth: request is not signed")
	ErrMalformed = errors.New("httpauth: malformed signature header")
	ErrScheme    = errors.New("httpauth: signature of an older scheme; run the same depot version on web and services")
	ErrSkew      = errors.New("httpauth: timestamp outside the allowed clock skew")
	ErrBadSig    = errors.New("httpauth: signature does not match any key")
	ErrReplay    = errors.New("httpauth: nonce already used (replayed request)")
)

// canonical is the signed string of a request. Every part is
// length-prefixed, so that no byte can move from one part to another; the
// signed headers are taken in sorted order of their canonical names, each
// with all its values in order, so that adding, removing or changing any of
// them (or a second value) changes the string.
func canonical(method, uri string, contentLength int64, ts, nonce string, h http.Header) []byte {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString("depot-" + scheme + "\n")
	field(method)
	field(uri)
	field(strconv.FormatInt(contentLength, 10))
	field(ts)
	field(nonce)
	values := map[string][]string{}
	for name, vs := range h {
		if IsSigned(name) {
			c := textproto.CanonicalMIMEHeaderKey(name)
			values[c] = append(values[c], vs...)
		}
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	field(strconv.Itoa(len(names)))
	for _, name := range names {
		field(name)
		field(strconv.Itoa(len(values[name])))
		for _, v := range values[name] {
			field(v)
		}
	}
	return []byte(b.String())
}

func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Sign adds the signature header to req, keyed with key. Call it after every
// other header, the query string and req.ContentLength are set.
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
	req.Header.Set(Header, scheme+" ts="+ts+" nonce="+nonce+" sig="+hex.EncodeToString(sig))
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
	if strings.HasPrefix(raw, "v1 ") {
		return ErrScheme
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
	if len(fields) != 4 || fields[0] != scheme {
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
