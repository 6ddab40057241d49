package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"depot"
	"depot/storage"
	"depot/storage/memstore"
	"depot/storage/storagetest"
)

// Store.Delete leaves an object in place while Options.DeferDelete says so
// (a backup is copying objects), removes it once it no longer does, and
// fails without removing anything when DeferDelete cannot tell.
func TestDeleteDeferred(t *testing.T) {
	ctx := context.Background()
	var deferred bool
	var askErr error
	s := storage.New(memstore.New(), storagetest.NewSessions(), storage.Options{
		DeferDelete: func(context.Context) (bool, error) { return deferred, askErr },
	})
	data := []byte("kept while a backup runs")
	obj, err := s.Put(ctx, storage.Chunk{Length: int64(len(data)), CRC32C: storage.CRC32C(data), Body: bytes.NewReader(data)}, "")
	if err != nil {
		t.Fatal(err)
	}
	exists := func() bool {
		_, err := s.Stat(ctx, obj.ID)
		return err == nil
	}
	deferred = true
	if err := s.Delete(ctx, obj.ID); err != nil || !exists() {
		t.Fatalf("deferred delete: %v, object present %v", err, exists())
	}
	deferred, askErr = false, errors.New("database down")
	if err := s.Delete(ctx, obj.ID); depot.ErrorCode(err) != depot.CodeUnavailable || !exists() {
		t.Fatalf("delete that cannot ask: %v, object present %v", err, exists())
	}
	askErr = nil
	if err := s.Delete(ctx, obj.ID); err != nil || exists() {
		t.Fatalf("delete: %v, object present %v", err, exists())
	}
}
