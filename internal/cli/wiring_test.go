package cli

import (
	"testing"
)

// TestStorageURLOptions: file:// takes io=direct|buffered and refuses
// anything else, so a typo is not silently ignored.
func TestStorageURLOptions(t *testing.T) {
	dir := t.TempDir()
	for _, q := range []string{"", "?io=direct", "?io=buffered"} {
		d, err := openDriver(t.Context(), "file://"+dir+q)
		if err != nil {
			t.Errorf("%q: %v", q, err)
			continue
		}
		d.Close()
	}
	for _, q := range []string{"?io=fast", "?io=direct&io=buffered", "?direct=1"} {
		if _, err := openDriver(t.Context(), "file://"+dir+q); err == nil {
			t.Errorf("%q was accepted", q)
		}
	}
}
