package checkpoint_test

// The procedure docs/audit.md gives a reviewer who trusts only the public
// key, written from the document alone: it uses golang.org/x/mod and the
// standard library, and none of depot's code, to check a proof bundle.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"depot/servicedb/servicedbtest"
)

// reviewerRecord is a record line as exported (JSON field names of
// docs/audit.md).
type reviewerRecord struct {
	Seq                 int64             `json:"seq"`
	Time                time.Time         `json:"time"`
	Action              string            `json:"action"`
	Outcome             string            `json:"outcome"`
	ErrorCode           string            `json:"error_code"`
	Actor               string            `json:"actor"`
	AuthMethod          string            `json:"auth_method"`
	Cohort              string            `json:"cohort"`
	Path                string            `json:"path"`
	FileName            string            `json:"file_name"`
	UploadID            string            `json:"upload_id"`
	DeclaredSize        int64             `json:"declared_size"`
	BytesTransferred    int64             `json:"bytes_transferred"`
	StoredSize          int64             `json:"stored_size"`
	SHA256              string            `json:"sha256"`
	ServerRole          string            `json:"server_role"`
	WebNode             string            `json:"web_node"`
	CorrelationID       string            `json:"correlation_id"`
	ClientIP            string            `json:"client_ip"`
	UserAgent           string            `json:"user_agent"`
	StreamStart         *time.Time        `json:"stream_start"`
	StreamComplete      *time.Time        `json:"stream_complete"`
	DurationMS          int64             `json:"duration_ms"`
	FileClass           string            `json:"file_class"`
	CleanupScheduledFor *time.Time        `json:"cleanup_scheduled_for"`
	Metadata            map[string]string `json:"metadata"`
	PrevHash            string            `json:"prev_hash"`
	Hash                string            `json:"hash"`
}

// reviewerHash is the documented canonical encoding, hashed.
func reviewerHash(r reviewerRecord) string {
	var b []byte
	field := func(s string) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	num := func(n int64) { field(strconv.FormatInt(n, 10)) }
	opt := func(t *time.Time) {
		if t == nil {
			field("")
		} else {
			num(t.UnixMilli())
		}
	}
	field("depot-audit-v1")
	num(r.Seq)
	num(r.Time.UnixMilli())
	for _, s := range []string{r.Action, r.Outcome, r.ErrorCode, r.Actor, r.AuthMethod, r.Cohort, r.Path, r.FileName, r.UploadID} {
		field(s)
	}
	num(r.DeclaredSize)
	num(r.BytesTransferred)
	num(r.StoredSize)
	for _, s := range []string{r.SHA256, r.ServerRole, r.WebNode, r.CorrelationID, r.ClientIP, r.UserAgent} {
		field(s)
	}
	opt(r.StreamStart)
	opt(r.StreamComplete)
	num(r.DurationMS)
	field(r.FileClass)
	opt(r.CleanupScheduledFor)
	num(int64(len(r.Metadata)))
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(r.Metadata[k])
	}
	field(r.PrevHash)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// reviewerCheck checks a bundle with the public key line alone and
// returns the seqs proven.
func reviewerCheck(bundle io.Reader, publicKey string) ([]int64, error) {
	v, err := note.NewVerifier(publicKey)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bundle)
	sc.Buffer(nil, 1<<24)
	if !sc.Scan() {
		return nil, errors.New("empty bundle")
	}
	var hdr struct{ Checkpoint string }
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
		return nil, err
	}
	n, err := note.Open([]byte(hdr.Checkpoint), note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(n.Text, "\n")
	if lines[0] != v.Name() {
		return nil, errors.New("origin is not the key's name")
	}
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, err
	}
	var proven []int64
	for sc.Scan() {
		var line struct {
			Record reviewerRecord
			Proof  tlog.RecordProof
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return proven, err
		}
		h := reviewerHash(line.Record)
		if h != line.Record.Hash {
			return proven, fmt.Errorf("record %d: fields do not hash to its hash", line.Record.Seq)
		}
		raw, _ := hex.DecodeString(h)
		if err := tlog.CheckRecord(line.Proof, size, root, line.Record.Seq-1, tlog.RecordHash(raw)); err != nil {
			return proven, fmt.Errorf("record %d: %w", line.Record.Seq, err)
		}
		proven = append(proven, line.Record.Seq)
	}
	return proven, sc.Err()
}

func TestReviewerProcedure(t *testing.T) {
	t.Parallel()
	tr := standardTrail(t, servicedbtest.SQLiteURL(t))
	c := tr.checkpoint(t)
	b := bundle(t, tr.db, latestNote(t, tr), c, c.Size)
	pub, err := os.ReadFile(tr.pub)
	if err != nil {
		t.Fatal(err)
	}
	proven, err := reviewerCheck(bytes.NewReader(b), strings.TrimSpace(string(pub)))
	if err != nil || int64(len(proven)) != c.Size {
		t.Fatalf("reviewer proved %d of %d records: %v", len(proven), c.Size, err)
	}
	// The reviewer's check fails on an edited record.
	edited := bytes.Replace(b, []byte(`"actor":"alice"`), []byte(`"actor":"eve"`), 1)
	if _, err := reviewerCheck(bytes.NewReader(edited), strings.TrimSpace(string(pub))); err == nil {
		t.Fatal("the reviewer accepted an edited record")
	}
}
