package localstore

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"depot/storage"
)

// TestWritesAtAnyAlignment appends pieces of awkward sizes (around block
// and buffer boundaries), rewinds to unaligned offsets and checks the staged
// file against a model after every step, with direct I/O on and off. With
// it on, whole blocks must really have gone through O_DIRECT.
func TestWritesAtAnyAlignment(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "buffered"}[buffered]
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			d, err := Open(dir, Options{BufferedIO: buffered})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: "a/b.csv"}
			if err := d.CreateStaging(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			var model []byte
			steps := []struct{ rewind, size int }{
				{0, 1}, {0, 4095}, {0, 1}, {0, 3*4096 + 17}, {0, copyBufSize + 5}, {0, 2 * copyBufSize},
				{100, 7}, {5000, 4096}, {0, copyBufSize - 3}, {1, 1}, {0, 8 << 20}, {4096, 4096},
			}
			for i, s := range steps {
				off := len(model) - s.rewind
				piece := make([]byte, s.size)
				for j := range piece {
					piece[j] = byte(rng.Uint32())
				}
				// a reader that returns short reads, as a network body does
				n, err := d.WriteStaging(t.Context(), st, int64(off), io.LimitReader(&shortReader{r: bytes.NewReader(piece), rng: rng}, int64(s.size)))
				if err != nil || n != int64(s.size) {
					t.Fatalf("step %d: wrote %d, %v", i, n, err)
				}
				model = append(model[:off], piece...)
				got, err := os.ReadFile(filepath.Join(dir, "a", partPrefix+st.ID))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, model) {
					t.Fatalf("step %d: staged file differs from the model (%d vs %d bytes)", i, len(got), len(model))
				}
			}
			if buffered && d.directBytes.Load() != 0 {
				t.Fatalf("%d bytes written directly with BufferedIO", d.directBytes.Load())
			}
			if !buffered {
				if d.noDirect.Load() {
					t.Skip("this file system refuses O_DIRECT")
				}
				if d.directBytes.Load() < int64(len(model))/2 {
					t.Fatalf("only %d of %d bytes went through O_DIRECT", d.directBytes.Load(), len(model))
				}
			}
			n, err := d.PutAtomic(t.Context(), "c.csv", bytes.NewReader(model[3:]), func(int64) (storage.Attrs, error) {
				return storage.Attrs{SHA256: "x"}, nil
			})
			if err != nil || n != int64(len(model)-3) {
				t.Fatalf("PutAtomic: %d, %v", n, err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "c.csv")); !bytes.Equal(got, model[3:]) {
				t.Fatal("PutAtomic: the object differs from what was written")
			}
		})
	}
}

// shortReader returns between 1 byte and 64 KiB per Read.
type shortReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1+s.rng.IntN(min(len(p), 64<<10))]
	}
	return s.r.Read(p)
}
