package services

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"depot/storage"
	"depot/storage/memstore"
)

// TestAppendCheckpointed: a body is appended in segments of the checkpoint
// size whatever its length (one below, at and above each boundary), no byte
// is lost where a segment ends, and a body that fails right at a boundary
// keeps the segments before it.
func TestAppendCheckpointed(t *testing.T) {
	const checkpoint = 1000
	st := storage.New(memstore.New(), storage.Options{})
	s := &Server{cfg: Config{Store: st}}
	ctx := t.Context()
	for i, size := range []int{0, 1, 999, 1000, 1001, 2000, 3001} {
		u, err := st.CreateUpload(ctx, fmt.Sprintf("c/f%d.csv", i), storage.UploadOptions{Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte{byte(i)}, size)
		for j := range data {
			data[j] += byte(j * 7)
		}
		got, err := s.appendCheckpointed(ctx, u, 0, iotest.HalfReader(bytes.NewReader(data)), checkpoint)
		if err != nil || got.Offset != int64(size) {
			t.Fatalf("%d bytes: offset %d, %v", size, got.Offset, err)
		}
		obj, err := st.Complete(ctx, u.ID, int64(size), "")
		sum := sha256.Sum256(data)
		if err != nil || obj.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("%d bytes: complete %+v, %v", size, obj, err)
		}
	}

	u, err := st.CreateUpload(ctx, "c/cut.csv", storage.UploadOptions{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	cut := errors.New("connection reset")
	body := io.MultiReader(bytes.NewReader(make([]byte, 2*checkpoint)), iotest.ErrReader(cut))
	got, err := s.appendCheckpointed(ctx, u, 0, body, checkpoint)
	if err == nil || got.Offset != 2*checkpoint {
		t.Fatalf("cut body: offset %d, err %v; want %d and an error", got.Offset, err, 2*checkpoint)
	}
}
