//go:build linux

package localstore

import "syscall"

// oDirect is the open flag for direct (uncached) I/O.
const oDirect = syscall.O_DIRECT
