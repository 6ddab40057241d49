package localstore

import (
	"bytes"
	"testing"
)

// BenchmarkPutSession measures replacing a session record of a typical size
// (an upload's record is about 600 bytes of JSON), as the Store does after
// every chunk: go test -bench PutSession ./storage/localstore/
func BenchmarkPutSession(b *testing.B) {
	d, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rec := bytes.Repeat([]byte("r"), 600)
	for b.Loop() {
		if err := d.PutSession(b.Context(), testSessionID, rec); err != nil {
			b.Fatal(err)
		}
	}
}
