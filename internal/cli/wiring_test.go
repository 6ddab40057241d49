package cli

import (
	"testing"

	"depot/storage"
)

// TestStorageURLOptions: file:// takes io=direct|buffered and refuses
// anything else, so a typo is not silently ignored.
func TestStorageURLOptions(t *testing.T) {
	dir := t.TempDir()
	for _, q := range []string{"", "?io=direct", "?io=buffered"} {
		st, err := openStore(t.Context(), "file://"+dir+q, storage.Options{})
		if err != nil {
			t.Errorf("%q: %v", q, err)
			continue
		}
		st.Driver().Close()
	}
	for _, q := range []string{"?io=fast", "?io=direct&io=buffered", "?direct=1"} {
		if _, err := openStore(t.Context(), "file://"+dir+q, storage.Options{}); err == nil {
			t.Errorf("%q was accepted", q)
		}
	}
}
