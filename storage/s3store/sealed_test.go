package s3store

import (
	"path/filepath"
	"sync"
	"testing"

	"depot/storage"
	"depot/storage/sealed"
	"depot/storage/storagetest"
)

// TestSealedDriver runs the conformance suite over storage/sealed wrapping
// the S3 driver: encryption at rest on S3 (multipart parts and tails hold
// ciphertext; a chunk ending mid-segment needs no rewrite of a part).
func TestSealedDriver(t *testing.T) {
	srv := startServer(t)
	kek := filepath.Join(t.TempDir(), "kek")
	if _, err := sealed.Generate(kek); err != nil {
		t.Fatal(err)
	}
	keys, err := sealed.LoadKeyring([]string{kek})
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(t *testing.T, d storage.Driver) storage.Driver {
		sd, err := sealed.New(d, keys)
		if err != nil {
			t.Fatal(err)
		}
		return sd
	}
	urls := map[storage.Driver]string{}
	var mu sync.Mutex
	storagetest.RunDriverTests(t, storagetest.Harness{
		New: func(t *testing.T) storage.Driver {
			u := srv.newBucket(t, "files")
			d := wrap(t, srv.open(t, u))
			mu.Lock()
			urls[d] = u
			mu.Unlock()
			return d
		},
		Reopen: func(t *testing.T, old storage.Driver) storage.Driver {
			mu.Lock()
			u := urls[old]
			mu.Unlock()
			return wrap(t, srv.open(t, u))
		},
	})
}
