package servicedb

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"

	"depot"
)

// GenesisHash is the PrevHash of the first audit record: 64 zeros.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// CanonicalVersion is the first field of every canonical encoding. A future
// encoding gets a new tag; records keep the one they were written with.
const CanonicalVersion = "depot-audit-v1"

// Canonical returns the byte string that an audit record's Hash covers:
// every field of ev except Hash, in a fixed order, each as a field.
//
// A field is a 4-byte big-endian unsigned length n followed by n bytes.
// Values are rendered as:
//   - strings: their bytes as stored (UTF-8);
//   - integers: base-10 ASCII with a leading '-' when negative ("-1", "0");
//   - times: unix milliseconds (UTC) as an integer; a nil optional time is
//     the empty field (a zero-length field, distinct from "0");
//   - metadata: a field holding the number of entries N as an integer,
//     followed by 2N fields key1, value1, key2, value2, … with keys in
//     ascending byte order.
//
// The fields, in order:
//
//	 1 CanonicalVersion ("depot-audit-v1")
//	 2 Seq                   3 Time                  4 Action
//	 5 Outcome               6 ErrorCode             7 Actor
//	 8 AuthMethod            9 Cohort               10 Key
//	11 FileName             12 UploadID             13 DeclaredSize
//	14 BytesTransferred     15 StoredSize           16 SHA256
//	17 ServerRole           18 WebNode              19 CorrelationID
//	20 ClientIP             21 UserAgent            22 StreamStart
//	23 StreamComplete       24 DurationMS           25 FileClass
//	26 CleanupScheduledFor  27 Metadata (N, then 2N fields)
//	28 PrevHash
//
// Hash(ev) is the lowercase hex SHA-256 of Canonical(ev). Seq and PrevHash
// are covered, so a record moved to another position, or whose predecessor
// changed, no longer verifies.
func Canonical(ev depot.AuditEvent) []byte {
	var e encoder
	e.str(CanonicalVersion)
	e.int(ev.Seq)
	e.int(ev.Time.UnixMilli())
	e.str(string(ev.Action))
	e.str(string(ev.Outcome))
	e.str(ev.ErrorCode)
	e.str(ev.Actor)
	e.str(ev.AuthMethod)
	e.str(ev.Cohort)
	e.str(ev.Key)
	e.str(ev.FileName)
	e.str(ev.UploadID)
	e.int(ev.DeclaredSize)
	e.int(ev.BytesTransferred)
	e.int(ev.StoredSize)
	e.str(ev.SHA256)
	e.str(ev.ServerRole)
	e.str(ev.WebNode)
	e.str(ev.CorrelationID)
	e.str(ev.ClientIP)
	e.str(ev.UserAgent)
	e.optTime(ev.StreamStart)
	e.optTime(ev.StreamComplete)
	e.int(ev.DurationMS)
	e.str(string(ev.FileClass))
	e.optTime(ev.CleanupScheduledFor)
	e.int(int64(len(ev.Metadata)))
	keys := make([]string, 0, len(ev.Metadata))
	for k := range ev.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.str(k)
		e.str(ev.Metadata[k])
	}
	e.str(ev.PrevHash)
	return e.b
}

// Hash returns the lowercase hex SHA-256 of Canonical(ev).
func Hash(ev depot.AuditEvent) string {
	sum := sha256.Sum256(Canonical(ev))
	return hex.EncodeToString(sum[:])
}

// encoder appends length-prefixed fields.
type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	if e.b == nil {
		e.b = make([]byte, 0, 512)
	}
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) int(n int64) { e.str(strconv.FormatInt(n, 10)) }

func (e *encoder) optTime(t *time.Time) {
	if t == nil {
		e.str("")
		return
	}
	e.int(t.UnixMilli())
}

// maxFieldBytes bounds every string field of an audit record (and each
// metadata key and value); longer values are cut at a rune boundary. It keeps
// a hostile User-Agent or file name from failing the audit write, and the
// encoding's 4-byte lengths far from overflow.
const maxFieldBytes = 4096

// clean makes s storable in both engines and bounded: invalid UTF-8 and NUL
// bytes (PostgreSQL text refuses both) become U+FFFD, and the result is cut
// to maxFieldBytes.
func clean(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= maxFieldBytes {
		return s
	}
	cut := maxFieldBytes
	for cut > 0 && !runeStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// runeStart reports whether b begins a UTF-8 encoded rune.
func runeStart(b byte) bool { return b&0xC0 != 0x80 }
