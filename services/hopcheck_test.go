package services

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http/httptest"
	"testing"
	"testing/iotest"

	"depot"
	"depot/internal/wire"
	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
)

// TestHopCheckedAppend: an append whose bytes do not match the sender's
// CRC-32C counts for nothing (the durable offset stays), is marked as
// damaged in transit, and the same chunk sent again intact is appended; a
// chunk longer than the checkpoint is one segment, so none of it counts
// before the check.
func TestHopCheckedAppend(t *testing.T) {
	const checkpoint = 1000
	local, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]storage.Driver{"mem": memstore.New(), "local": local} {
		t.Run(name, func(t *testing.T) {
			st := storage.New(d, storage.Options{})
			s := &Server{cfg: Config{Store: st}}
			ctx := t.Context()
			u, err := st.CreateUpload(ctx, "c/checked.csv", storage.UploadOptions{Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			chunk := make([]byte, 2500) // longer than a checkpoint
			for i := range chunk {
				chunk[i] = byte(i * 11)
			}
			sum := crc32.Checksum(chunk, crc32.MakeTable(crc32.Castagnoli))
			send := func(crc uint32) (depot.Upload, error) {
				r := httptest.NewRequest("PATCH", "/internal/v1/uploads/"+u.ID, bytes.NewReader(chunk))
				r.Header.Set(wire.HeaderCRC32C, fmt.Sprintf("%08x", crc))
				src, whole, err := hopChecked(r, iotest.HalfReader(r.Body))
				if err != nil {
					t.Fatal(err)
				}
				if whole != int64(len(chunk)) {
					t.Fatalf("segment of %d bytes, want the whole body (%d)", whole, len(chunk))
				}
				return s.appendCheckpointed(ctx, u, 0, src, max(checkpoint, whole))
			}
			_, err = send(sum ^ 1)
			if !errors.Is(err, errHopDamaged) || depot.ErrorCode(err) != depot.CodeUnavailable {
				t.Fatalf("damaged chunk: %v, want errHopDamaged and unavailable", err)
			}
			if cur, err := st.Upload(ctx, u.ID); err != nil || cur.Offset != 0 {
				t.Fatalf("after a damaged chunk the offset is %d (%v), want 0", cur.Offset, err)
			}
			got, err := send(sum)
			if err != nil || got.Offset != int64(len(chunk)) {
				t.Fatalf("intact chunk: offset %d, %v", got.Offset, err)
			}
			want := sha256.Sum256(chunk)
			if obj, err := st.Complete(ctx, u.ID, int64(len(chunk)), hex.EncodeToString(want[:])); err != nil {
				t.Fatalf("complete: %+v, %v", obj, err)
			}
		})
	}
}

// TestHopCheckedHeader: a malformed header, or one on a body of unknown
// length, is refused; no header means no check.
func TestHopCheckedHeader(t *testing.T) {
	for _, tc := range []struct {
		header string
		length int64
		ok     bool
	}{{"", -1, true}, {"0000000a", 3, true}, {"xyz", 3, false}, {"a", 3, false}, {"0000000a", -1, false}} {
		r := httptest.NewRequest("PATCH", "/", bytes.NewReader([]byte("abc")))
		r.ContentLength = tc.length
		if tc.header != "" {
			r.Header.Set(wire.HeaderCRC32C, tc.header)
		}
		_, _, err := hopChecked(r, r.Body)
		if (err == nil) != tc.ok {
			t.Errorf("header %q, length %d: %v", tc.header, tc.length, err)
		}
	}
}
