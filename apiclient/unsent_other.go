//go:build !linux

package apiclient

import "net"

// unsentBytes is not known on this system: progress inside a blocked write
// is seen only between write pieces.
func unsentBytes(net.Conn) (int, bool) { return 0, false }

// unsentKnown: unsentBytes does not work here.
const unsentKnown = false
