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

// TestOverlapHashReaderTwoBuffers reads into two buffers in turn, as the
// drivers' writers do, and overwrites each buffer as soon as the next Read
// returns: the hash must still be that of the stream, and each Read must
// fill its buffer (one hand-off per buffer).
func TestOverlapHashReaderTwoBuffers(t *testing.T) {
	data := make([]byte, 5<<20+123)
	for i := range data {
		data[i] = byte(i * 13)
	}
	h := sha256.New()
	// iotest-like reader that returns at most 4000 bytes per Read.
	hr := newOverlapHashReader(&shortReads{r: bytes.NewReader(data), max: 4000}, h)
	bufs := [2][]byte{make([]byte, 1<<20), make([]byte, 1<<20)}
	var got []byte
	var last []byte
	for i := 0; ; i++ {
		b := bufs[i%2]
		n, err := hr.Read(b)
		if last != nil {
			clear(last) // the buffer returned before may be reused now
		}
		if err == nil && n != len(b) {
			t.Fatalf("read %d bytes into a %d-byte buffer before the end", n, len(b))
		}
		got = append(got, b[:n]...)
		last = b[:n]
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	hr.Wait()
	want := sha256.Sum256(data)
	if !bytes.Equal(h.Sum(nil), want[:]) || !bytes.Equal(got, data) {
		t.Fatal("hash or bytes differ from the stream")
	}
}

type shortReads struct {
	r   io.Reader
	max int
}

func (s *shortReads) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), s.max)])
}
