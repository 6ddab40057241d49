package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files hold one line in the note package's formats:
//
//	private (signing) key: PRIVATE+KEY+<name>+<hash>+<base64(0x01 || Ed25519 seed)>
//	public (verifier) key: <name>+<hash>+<base64(0x01 || Ed25519 public key)>
//
// where <hash> is the first four bytes of SHA-256(name || "\n" || 0x01 ||
// public key), in hex. Anyone with Go can check a checkpoint with the public
// key line and golang.org/x/mod/sumdb/note.

// DefaultKeyName is the key name (and checkpoint origin) when none is given.
const DefaultKeyName = "depot-audit"

// GenerateKey returns a new Ed25519 key pair named name, as the private and
// public key lines.
func GenerateKey(name string) (private, public string, err error) {
	if name == "" {
		name = DefaultKeyName
	}
	return note.GenerateKey(rand.Reader, name)
}

// WriteKeyFiles generates a key named name and writes the private key to
// path (mode 0600, refusing to overwrite) and the public key to path+".pub"
// (mode 0644). It returns the public key line.
func WriteKeyFiles(path, name string) (string, error) {
	private, public, err := GenerateKey(name)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(private + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(path+".pub", []byte(public+"\n"), 0o644); err != nil {
		return "", err
	}
	return public, nil
}

// SigningKey is a private key with its public half.
type SigningKey struct {
	note.Signer
	Verifier note.Verifier
	Public   string // the public key line
}

// ReadSigningKey reads a private key file. It refuses a file that other
// users may read.
func ReadSigningKey(path string) (*SigningKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: the signing key must not be readable by others (chmod 600)", path)
	}
	line, err := readLine(path)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(line)
	if err != nil {
		return nil, fmt.Errorf("%s: not a signing key: %w", path, err)
	}
	pub, err := PublicKey(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := note.NewVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &SigningKey{Signer: s, Verifier: v, Public: pub}, nil
}

// ReadVerifier reads a public key file; a private key file is accepted too
// (its public half is used).
func ReadVerifier(path string) (note.Verifier, error) {
	line, err := readLine(path)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(line, "PRIVATE+KEY+") {
		if line, err = PublicKey(line); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	v, err := note.NewVerifier(line)
	if err != nil {
		return nil, fmt.Errorf("%s: not a public key: %w", path, err)
	}
	return v, nil
}

// PublicKey returns the public key line of a private key line.
func PublicKey(private string) (string, error) {
	rest, ok := strings.CutPrefix(private, "PRIVATE+KEY+")
	name, rest, ok2 := strings.Cut(rest, "+")
	_, key64, ok3 := strings.Cut(rest, "+") // the base64 key may itself hold a '+'
	if !ok || !ok2 || !ok3 {
		return "", errors.New("malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed signing key (not Ed25519)")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// readLine reads a one-line key file.
func readLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(b))
	if line == "" || strings.ContainsAny(line, "\n\r") {
		return "", fmt.Errorf("%s: expected one key line", path)
	}
	return line, nil
}
