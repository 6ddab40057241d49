//go:build !linux

package localstore

// oDirect is 0 where direct I/O is not implemented: writes go through the
// page cache.
const oDirect = 0
