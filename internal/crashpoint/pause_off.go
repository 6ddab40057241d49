//go:build !crashpoints

package crashpoint

// Pause marks a step where a test may hold the process (see the
// crashpoints build); in a normal build it does nothing.
func Pause(name string) {}
