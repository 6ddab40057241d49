package memstore_test

import (
	"testing"

	"depot/storage"
	"depot/storage/memstore"
	"depot/storage/storagetest"
)

func TestDriver(t *testing.T) {
	storagetest.RunDriverTests(t, storagetest.Harness{
		New: func(*testing.T) storage.Driver { return memstore.New() },
	})
}
