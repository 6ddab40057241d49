package sealed

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
)

// Keyring holds the key-encryption keys (KEKs): age X25519 identities read
// from files. The first identity of the first file is the current KEK,
// which new objects are encrypted to; every identity may decrypt.
type Keyring struct {
	current *age.X25519Identity
	all     []age.Identity
	files   []string   // file of each identity in all
	state   []stateKey // state key of each identity in all (statekey.go)
}

// SplitFiles splits a DEPOT_KEK_FILE value: file names separated by
// commas (the variable may also be given several times; see config).
func SplitFiles(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// LoadKeyring reads the KEK files. A missing or unreadable file, one that
// group or others may read, or one holding anything but age X25519
// identities, is an error: encryption fails closed rather than fall back
// to storing plaintext.
func LoadKeyring(files []string) (*Keyring, error) {
	if len(files) == 0 {
		return nil, errors.New("no key-encryption key file given")
	}
	k := &Keyring{}
	for _, name := range files {
		if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("key-encryption key file %s may be read by others (mode %v): chmod 600 it", name, fi.Mode().Perm())
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("cannot read key-encryption key file: %w", err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("key-encryption key file %s: %w", name, err)
		}
		for _, id := range ids {
			x, ok := id.(*age.X25519Identity)
			if !ok {
				return nil, fmt.Errorf("key-encryption key file %s: only age X25519 identities (AGE-SECRET-KEY-1…) are supported", name)
			}
			if k.current == nil {
				k.current = x
			}
			sk, err := newStateKey(x)
			if err != nil {
				return nil, fmt.Errorf("key-encryption key file %s: %w", name, err)
			}
			k.all = append(k.all, x)
			k.files = append(k.files, name)
			k.state = append(k.state, sk)
		}
	}
	return k, nil
}

// Generate writes a new KEK (an age X25519 identity, with its public key as
// a comment) to name with mode 0600; it refuses to overwrite a file. It
// returns the public key (age1…).
func Generate(name string) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	pub := id.Recipient().String()
	_, err = fmt.Fprintf(f, "# depot key-encryption key (age X25519 identity)\n# public key: %s\n%s\n", pub, id)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", err
	}
	return pub, nil
}

// Recipient returns the public key of the current KEK (age1…).
func (k *Keyring) Recipient() string { return k.current.Recipient().String() }

// Recipients returns the public key of every KEK, in order.
func (k *Keyring) Recipients() []string {
	out := make([]string, len(k.all))
	for i, id := range k.all {
		out[i] = id.(*age.X25519Identity).Recipient().String()
	}
	return out
}

// newHeader returns a fresh age header wrapping a new random file key for
// the current KEK, and that file key.
func (k *Keyring) newHeader() (hdr, fileKey []byte, err error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.current.Recipient())
	if err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	if hdr, err = age.ExtractHeader(&buf); err != nil {
		return nil, nil, err
	}
	fileKey, err = age.DecryptHeader(hdr, k.current)
	return hdr, fileKey, err
}

// fileKey unwraps the file key of header hdr with any KEK; ErrNoKey when
// none opens it.
func (k *Keyring) fileKey(hdr []byte) ([]byte, error) {
	fk, err := age.DecryptHeader(hdr, k.all...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	return fk, nil
}

// headerMAC returns the MAC of an age header whose text up to and
// including "---" is upTo: HMAC-SHA-256 under HKDF(file key, "header").
func headerMAC(fileKey, upTo []byte) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, fileKey, nil, "header", sha256.Size)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, key)
	h.Write(upTo)
	return h.Sum(nil), nil
}

// headerMatches reports whether fileKey is the file key of age header hdr:
// whether the header's MAC verifies, as age checks it, without unwrapping.
func headerMatches(hdr, fileKey []byte) bool {
	i := bytes.LastIndex(hdr, []byte("\n--- "))
	if i < 0 || !bytes.HasSuffix(hdr, []byte("\n")) {
		return false
	}
	mac, err := base64.RawStdEncoding.DecodeString(string(hdr[i+len("\n--- ") : len(hdr)-1]))
	if err != nil {
		return false
	}
	want, err := headerMAC(fileKey, hdr[:i+len("\n---")])
	return err == nil && hmac.Equal(want, mac)
}

// Which returns the index (in Recipients) of the KEK that opens header
// hdr, or -1.
func (k *Keyring) Which(hdr []byte) int {
	for i, id := range k.all {
		if _, err := age.DecryptHeader(hdr, id); err == nil {
			return i
		}
	}
	return -1
}
