// Package sessioncookie seals the web tier's single sign-on state into
// cookies, so that web keeps no session store: a value is JSON encrypted and
// authenticated with AES-256-GCM under a key derived (HKDF-SHA256) from a
// configured secret, with the cookie's name as additional data (a value is
// accepted only under the name it was sealed for). Several secrets may be
// configured: the first seals, every one opens, so that web processes
// sharing the list accept each other's cookies and a secret can be rotated
// without signing everybody out.
package sessioncookie

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Cookie names. The __Host- prefix makes the browser refuse them unless
// they are Secure, for this host only (no Domain) and for every path.
const (
	SessionName = "__Host-depot-session"
	LoginName   = "__Host-depot-login"
)

// MinSecretLen is the shortest accepted secret, in bytes.
const MinSecretLen = 32

// version is the first byte of every sealed value.
const version = 1

// Session is a signed-in browser session.
type Session struct {
	IDToken  string `json:"i"`           // the provider's ID token, forwarded to services
	Refresh  string `json:"r,omitempty"` // the refresh token, when the provider gave one
	IDExpiry int64  `json:"x"`           // unix seconds: the ID token's expiry
	Subject  string `json:"u"`           // the ID token's subject: a refresh must not change it
	Expiry   int64  `json:"e"`           // unix seconds: the end of this cookie's validity
	SignedIn int64  `json:"s"`           // unix seconds: the sign-in; renewals stop at SignedIn + the maximum age
	CSRF     string `json:"c"`           // the anti-forgery token the page sends in a header
}

// Login is a sign-in in progress, from the redirect to the provider to the
// callback.
type Login struct {
	State    string `json:"st"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE code verifier
	Expiry   int64  `json:"e"` // unix seconds
}

// ErrInvalid is returned for a value that was not sealed by any configured
// secret for that cookie name (tampered, truncated, forged or foreign).
var ErrInvalid = errors.New("sessioncookie: invalid value")

// Codec seals and opens cookie values.
type Codec struct {
	aeads []cipher.AEAD
}

// New returns a Codec for secrets (the first seals). Each must be at least
// MinSecretLen bytes.
func New(secrets []string) (*Codec, error) {
	if len(secrets) == 0 {
		return nil, errors.New("sessioncookie: no secret")
	}
	c := &Codec{}
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("sessioncookie: a secret must be at least %d bytes", MinSecretLen)
		}
		key, err := hkdf.Key(sha256.New, []byte(s), []byte("depot"), "depot session cookie v1", 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		c.aeads = append(c.aeads, aead)
	}
	return c, nil
}

// Seal encrypts v as the value of the cookie named name.
func (c *Codec) Seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	a := c.aeads[0]
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plain)+a.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return "", err
	}
	out = a.Seal(out, out[1:1+a.NonceSize()], plain, []byte(name))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts the value of the cookie named name into v. Any value not
// sealed for name by one of the secrets is ErrInvalid.
func (c *Codec) Open(name, value string, v any) error {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(raw) < 1 || raw[0] != version {
		return ErrInvalid
	}
	for _, a := range c.aeads {
		if len(raw) < 1+a.NonceSize()+a.Overhead() {
			return ErrInvalid
		}
		plain, err := a.Open(nil, raw[1:1+a.NonceSize()], raw[1+a.NonceSize():], []byte(name))
		if err != nil {
			continue
		}
		if json.Unmarshal(plain, v) != nil {
			return ErrInvalid
		}
		return nil
	}
	return ErrInvalid
}
