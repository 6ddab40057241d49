package sealed_test

import (
	"bytes"
	"os"
	"testing"

	"depot"
	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/storagetest"
)

// BenchmarkAppend appends 8 MiB chunks to a session over a sealed local
// store, as services does for an upload through web.
func BenchmarkAppend(b *testing.B) {
	for _, enc := range []bool{false, true} {
		name := "plain"
		if enc {
			name = "sealed"
		}
		b.Run(name, func(b *testing.B) {
			inner, err := localstore.Open(b.TempDir(), localstore.Options{BufferedIO: os.Getenv("BENCH_BUFFERED") != ""})
			if err != nil {
				b.Fatal(err)
			}
			var d storage.Driver = inner
			if enc {
				k, _ := testKeys(&testing.T{})
				d = wrapDriver(&testing.T{}, inner, k)
			}
			appendChunks(b, d, 8<<20, false)
		})
	}
}

// BenchmarkSmallChunks appends lazy 64 KiB chunks to a sealed session on
// the local disk through the page cache: what a chunk costs besides its
// bytes (its state: file key, tail, hash state).
func BenchmarkSmallChunks(b *testing.B) {
	k, _ := testKeys(&testing.T{})
	inner, err := localstore.Open(b.TempDir(), localstore.Options{BufferedIO: true})
	if err != nil {
		b.Fatal(err)
	}
	appendChunks(b, wrapDriver(&testing.T{}, inner, k), 64<<10, true)
}

// appendChunks appends b.N chunks of size bytes to one session through a
// Store over d.
func appendChunks(b *testing.B, d storage.Driver, size int, lazy bool) {
	s := storage.New(d, storagetest.NewSessions(), storage.Options{})
	defer s.Close()
	chunk := storagetest.RandData(size, 1)
	crc := storage.CRC32C(chunk)
	b.SetBytes(int64(size))
	u, err := s.CreateUpload(b.Context(), depot.Upload{Key: "c/x", DeclaredSize: -1, Resumable: true})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		_, err := s.Append(b.Context(), u.ID, storage.Chunk{Offset: int64(i) * int64(size), Length: int64(size), CRC32C: crc, Body: bytes.NewReader(chunk), Lazy: lazy})
		if err != nil {
			b.Fatal(err)
		}
	}
}
