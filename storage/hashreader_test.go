package storage

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
)

// eofWithData returns its data and io.EOF from the same Read, as HTTP body
// readers do.
type eofWithData struct{ data []byte }

func (r *eofWithData) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestOverlapHashReaderFinishesBeforeEOF checks that a caller may reuse its
// buffer as soon as Read returns the end of the stream: the hash must not
// see the overwritten bytes.
func TestOverlapHashReaderFinishesBeforeEOF(t *testing.T) {
	for range 200 {
		data := bytes.Repeat([]byte("depot"), 50_000)
		h := sha256.New()
		hr := newOverlapHashReader(&eofWithData{data: bytes.Clone(data)}, h)
		buf := make([]byte, 1<<20)
		for {
			n, err := hr.Read(buf)
			clear(buf[:n]) // the caller reuses its buffer at once
			if err == io.EOF {
				break
			}
		}
		hr.Wait()
		want := sha256.Sum256(data)
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("hash saw bytes the caller overwrote after Read returned io.EOF")
		}
	}
}

// TestOverlapHashReaderMatchesSequential hashes a stream read in uneven
// pieces and compares with a plain hash.
func TestOverlapHashReaderMatchesSequential(t *testing.T) {
	data := make([]byte, 3<<20+7)
	for i := range data {
		data[i] = byte(i * 7)
	}
	h := sha256.New()
	hr := newOverlapHashReader(bytes.NewReader(data), h)
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{hr}, make([]byte, 65537)); err != nil {
		t.Fatal(err)
	}
	hr.Wait()
	want := sha256.Sum256(data)
	if !bytes.Equal(h.Sum(nil), want[:]) || !bytes.Equal(got.Bytes(), data) {
		t.Fatal("overlapped hash differs from a sequential one")
	}
}
