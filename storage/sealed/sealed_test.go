package sealed_test

import (
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
	"depot/storage/sealed"
	"depot/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKeys writes a new KEK in a temporary directory and loads it.
func testKeys(t *testing.T) (*sealed.Keyring, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "kek")
	if _, err := sealed.Generate(name); err != nil {
		t.Fatal(err)
	}
	k, err := sealed.LoadKeyring([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	return k, name
}

func wrapDriver(t *testing.T, inner storage.Driver, k *sealed.Keyring) storage.Driver {
	t.Helper()
	d, err := sealed.New(inner, k)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDriver runs the storage conformance suite over sealed drivers
// wrapping memory and the local disk.
func TestDriver(t *testing.T) {
	k, _ := testKeys(t)
	t.Run("mem", func(t *testing.T) {
		storagetest.RunDriverTests(t, storagetest.Harness{
			New: func(t *testing.T) storage.Driver { return wrapDriver(t, memstore.New(), k) },
		})
	})
	t.Run("local", func(t *testing.T) {
		dirs := map[storage.Driver]string{}
		open := func(t *testing.T, dir string) storage.Driver {
			l, err := localstore.Open(dir, localstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := wrapDriver(t, l, k)
			dirs[d] = dir
			return d
		}
		storagetest.RunDriverTests(t, storagetest.Harness{
			New:    func(t *testing.T) storage.Driver { return open(t, t.TempDir()) },
			Reopen: func(t *testing.T, d storage.Driver) storage.Driver { return open(t, dirs[d]) },
		})
	})
}
