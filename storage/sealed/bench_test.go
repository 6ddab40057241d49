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
			s := storage.New(d, storagetest.NewSessions(), storage.Options{})
			defer s.Close()
			chunk := storagetest.RandData(8<<20, 1)
			crc := storage.CRC32C(chunk)
			b.SetBytes(int64(len(chunk)))
			u, err := s.CreateUpload(b.Context(), depot.Upload{Key: "c/x", DeclaredSize: -1, Resumable: true})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				_, err := s.Append(b.Context(), u.ID, storage.Chunk{Offset: int64(i) * int64(len(chunk)), Length: int64(len(chunk)), CRC32C: crc, Body: bytes.NewReader(chunk)})
				if err != nil {
					b.Fatal(err)
				}
			}
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
	s := storage.New(wrapDriver(&testing.T{}, inner, k), storagetest.NewSessions(), storage.Options{})
	defer s.Close()
	chunk := storagetest.RandData(64<<10, 1)
	crc := storage.CRC32C(chunk)
	b.SetBytes(int64(len(chunk)))
	u, err := s.CreateUpload(b.Context(), depot.Upload{Key: "c/x", DeclaredSize: -1, Resumable: true})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		_, err := s.Append(b.Context(), u.ID, storage.Chunk{Offset: int64(i) * int64(len(chunk)), Length: int64(len(chunk)), CRC32C: crc, Body: bytes.NewReader(chunk), Lazy: true})
		if err != nil {
			b.Fatal(err)
		}
	}
}
