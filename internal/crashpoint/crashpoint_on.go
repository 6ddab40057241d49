//go:build crashpoints

package crashpoint

import (
	"os"
	"syscall"
	"time"
)

// Reach kills the process with SIGKILL when DEPOTTEST_CRASH_AT is name.
func Reach(name string) {
	if os.Getenv("DEPOTTEST_CRASH_AT") != name {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Minute) // the signal is delivered asynchronously
}
