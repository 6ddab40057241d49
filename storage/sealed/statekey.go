package sealed

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// A staging area's small secrets (its tail, its sealed file key, the
// session's hash state) live in the services database between two chunks.
// They are sealed with XChaCha20-Poly1305 under a state key derived from a
// KEK, with a random nonce every time:
//
//	"S1" | key ID (8 bytes) | nonce (24 bytes) | ciphertext and tag
//
// The key ID is the first 8 bytes of SHA-256 of the KEK's public key, so
// any configured KEK opens what it sealed whatever the order of the files.
// Unlike a small age file per secret (an X25519 key agreement to seal and
// another to open), this costs a few microseconds: a chunk seals and opens
// several. Older sessions' secrets, small age files, still open.

const (
	stateMagic    = "S1"
	stateKeyIDLen = 8
	stateOverhead = len(stateMagic) + stateKeyIDLen + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// ageMagic starts every age file, and so a secret sealed by older builds.
const ageMagic = "age-encryption.org/v1\n"

// stateKey is the state key of one KEK.
type stateKey struct {
	id   [stateKeyIDLen]byte
	aead cipher.AEAD
}

// newStateKey derives the state key of KEK id: HKDF-SHA-256 of its
// secret (the identity's encoding), info "depot staging state v1".
func newStateKey(id *age.X25519Identity) (stateKey, error) {
	key, err := hkdf.Key(sha256.New, []byte(id.String()), nil, "depot staging state v1", chacha20poly1305.KeySize)
	if err != nil {
		return stateKey{}, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return stateKey{}, err
	}
	sk := stateKey{aead: aead}
	sum := sha256.Sum256([]byte(id.Recipient().String()))
	copy(sk.id[:], sum[:])
	return sk, nil
}

// seal encrypts a small plaintext under the current KEK's state key.
func (k *Keyring) seal(plain []byte) ([]byte, error) {
	sk := k.state[0]
	out := make([]byte, 0, stateOverhead+len(plain))
	out = append(out, stateMagic...)
	out = append(out, sk.id[:]...)
	nonce := out[len(out) : len(out)+chacha20poly1305.NonceSizeX]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails on Linux
	out = out[:len(out)+len(nonce)]
	return sk.aead.Seal(out, nonce, plain, out[:len(stateMagic)+stateKeyIDLen]), nil
}

// open decrypts what seal produced (or, from an older build, a small age
// file under a KEK). Empty stays empty; ErrNoKey when no configured KEK
// sealed it.
func (k *Keyring) open(sealed []byte) ([]byte, error) {
	switch {
	case len(sealed) == 0:
		return nil, nil
	case bytes.HasPrefix(sealed, []byte(ageMagic)):
		return k.openAge(sealed)
	case len(sealed) < stateOverhead || string(sealed[:len(stateMagic)]) != stateMagic:
		return nil, fmt.Errorf("%w: sealed state of %d bytes has no known format", ErrCorrupt, len(sealed))
	}
	ad := sealed[:len(stateMagic)+stateKeyIDLen]
	id := ad[len(stateMagic):]
	for _, sk := range k.state {
		if !bytes.Equal(sk.id[:], id) {
			continue
		}
		nonce := sealed[len(ad) : len(ad)+chacha20poly1305.NonceSizeX]
		plain, err := sk.aead.Open(nil, nonce, sealed[len(ad)+len(nonce):], ad)
		if err != nil {
			return nil, fmt.Errorf("%w: sealed state: %v", ErrCorrupt, err)
		}
		return plain, nil
	}
	return nil, ErrNoKey
}

// openAge decrypts a small age file under any KEK.
func (k *Keyring) openAge(sealed []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), k.all...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
