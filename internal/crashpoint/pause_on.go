//go:build crashpoints

package crashpoint

import (
	"io"
	"os"
	"path/filepath"
)

// Pause holds the process at step name when DEPOTTEST_PAUSE_AT is name. It
// signals and waits through two named pipes the test made in
// DEPOTTEST_PAUSE_DIR: it opens "reached" for writing, which blocks until
// the test opens it for reading (the test now knows the step is reached),
// then reads "resume" to its end, which blocks until the test opens it for
// writing and closes it. No clock is involved.
func Pause(name string) {
	if os.Getenv("DEPOTTEST_PAUSE_AT") != name {
		return
	}
	dir := os.Getenv("DEPOTTEST_PAUSE_DIR")
	if f, err := os.OpenFile(filepath.Join(dir, "reached"), os.O_WRONLY, 0); err == nil {
		_ = f.Close()
	}
	if f, err := os.Open(filepath.Join(dir, "resume")); err == nil {
		_, _ = io.Copy(io.Discard, f)
		_ = f.Close()
	}
}
