// Package checkpoint makes depot's audit trail prove itself to someone who
// does not trust its database: signed checkpoints of the trail's Merkle
// tree (see servicedb's audit tree), kept by witnesses outside the database
// (a directory, an S3 prefix, an HTTP endpoint), the writer that produces
// them in the services tier, the verification of a database against them,
// and inclusion proofs that a reviewer checks with the public key alone.
//
// A checkpoint is a signed note (golang.org/x/mod/sumdb/note, Ed25519)
// whose text follows the C2SP tlog-checkpoint layout:
//
//	depot-audit                      origin: the signing key's name
//	1234                             tree size: records 1..1234
//	l1NDfF0m9bmv6E0T8z1HuGhqJ1gPlsiqiA6cknwCe2g=   root (base64), tlog.TreeHash
//	time 2026-12-07T10:15:00.123Z    when it was signed (UTC, ms)
//	head 5f0c…e91a                   chain hash of record 1234 (hex)
//
//	— depot-audit Az3grlk…           signature line(s) of the note
//
// The leaves of the tree are the records' chain hashes (servicedb.LeafHash),
// so the root covers every field of every record up to the size, and a
// record's inclusion or an earlier checkpoint's being a prefix is proved
// with about log₂ N hashes.
package checkpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the statement a checkpoint signs: the trail had Size
// records, whose tree hashes to Root and whose last record hashes to Head,
// at Time.
type Checkpoint struct {
	Origin string    // the signing key's name
	Size   int64     // number of records (the last seq)
	Root   tlog.Hash // tlog.TreeHash of the first Size records
	Time   time.Time // when it was signed, UTC, millisecond precision
	Head   string    // chain hash of record Size (servicedb.GenesisHash for 0)
}

// Text is the checkpoint's note text (see the package comment).
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\nhead %s\n", c.Origin, c.Size,
		base64.StdEncoding.EncodeToString(c.Root[:]), c.Time.UTC().Format(timeLayout), c.Head)
}

// timeLayout is RFC 3339 in UTC with exactly three fractional digits.
const timeLayout = "2006-01-02T15:04:05.000Z"

// String names the checkpoint for an operator: size and time.
func (c Checkpoint) String() string {
	return fmt.Sprintf("size %d signed %s", c.Size, c.Time.UTC().Format(timeLayout))
}

// ParseText parses a checkpoint's note text. It refuses anything but the
// exact form Text writes.
func ParseText(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(text, "\n")
	if len(lines) != 6 || lines[5] != "" {
		return c, errors.New("checkpoint: not five lines")
	}
	c.Origin = lines[0]
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	c.Size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint: bad root %q", lines[2])
	}
	copy(c.Root[:], root)
	ts, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return c, errors.New("checkpoint: no time line")
	}
	if c.Time, err = time.Parse(timeLayout, ts); err != nil {
		return c, fmt.Errorf("checkpoint: bad time %q", ts)
	}
	head, ok := strings.CutPrefix(lines[4], "head ")
	if _, herr := hex.DecodeString(head); !ok || len(head) != 64 || herr != nil || strings.ToLower(head) != head {
		return c, fmt.Errorf("checkpoint: bad head line %q", lines[4])
	}
	c.Head = head
	if c.Text() != text {
		return c, errors.New("checkpoint: not in canonical form")
	}
	return c, nil
}

// Sign returns c as a note signed by s, and c as signed: its Origin set to
// s's name and its Time truncated to the millisecond.
func Sign(c Checkpoint, s note.Signer) ([]byte, Checkpoint, error) {
	c.Origin = s.Name()
	c.Time = time.UnixMilli(c.Time.UnixMilli()).UTC()
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	return msg, c, err
}

// Open verifies msg's signature by v and parses the checkpoint it signs.
// The checkpoint's origin must be v's name. Any other signature lines are
// ignored (a witness may cosign).
func Open(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := ParseText(n.Text)
	if err != nil {
		return c, err
	}
	if c.Origin != v.Name() {
		return c, fmt.Errorf("checkpoint: origin %q is not the key's name %q", c.Origin, v.Name())
	}
	return c, nil
}

// Signed is a checkpoint as found in a witness: where, its bytes, and (once
// opened) what it says.
type Signed struct {
	Name  string // object or file name in the witness
	Note  []byte
	Check Checkpoint
	Err   error // why Note could not be opened with the key; nil when it was
}

// OpenAll opens every note with v. Notes that do not open keep their
// error in Err.
func OpenAll(notes []Signed, v note.Verifier) []Signed {
	out := make([]Signed, len(notes))
	for i, s := range notes {
		s.Check, s.Err = Open(s.Note, v)
		out[i] = s
	}
	return out
}

// sameNote reports whether two notes are the same bytes, ignoring a
// trailing newline difference.
func sameNote(a, b []byte) bool {
	return bytes.Equal(bytes.TrimRight(a, "\n"), bytes.TrimRight(b, "\n"))
}
