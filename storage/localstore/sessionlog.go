package localstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"hash/maphash"
	"io/fs"
	"os"
	"sync"
)

// A session record file is a log of frames, each a whole record:
//
//	"\x00dsr" | record length (uint32, little endian) | CRC-32C of the record (uint32, little endian) | record
//
// PutSession appends a frame instead of writing a new file and renaming it
// over the old one: an upload rewrites its record after every chunk, and a
// new inode per chunk costs the file system an allocation and a release
// each time (on ext4 without a journal the allocator even rechecks every
// recently released inode it passes). The last frame whose CRC matches is
// the record; a frame still being appended, or torn by a crash, fails its
// check, so a reader gets the record before it, as it would have got the old
// file before a rename.
//
// A file that does not start with the frame magic holds one record written
// whole, as earlier versions did.
const (
	frameMagic      = "\x00dsr"
	frameHeaderSize = len(frameMagic) + 8

	// maxSessionLog is the size past which PutSession writes a new file
	// holding only the new record instead of appending to the log.
	maxSessionLog = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends record to dst as one frame.
func appendFrame(dst, record []byte) []byte {
	dst = append(dst, frameMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(record)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(record, castagnoli))
	return append(dst, record...)
}

// lastRecord returns the record of the last whole frame of the log b whose
// CRC matches, and false if there is none. A log that does not start with
// the frame magic is returned whole (a record of an earlier version).
func lastRecord(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte(frameMagic)) {
		return b, true
	}
	// Frames are only ever appended after a whole frame (see sessionLogs),
	// so walking the headers finds every frame; only the last ones can be
	// incomplete or torn.
	var starts []int
	for off := 0; len(b)-off >= frameHeaderSize && string(b[off:off+len(frameMagic)]) == frameMagic; {
		n := int(binary.LittleEndian.Uint32(b[off+len(frameMagic):]))
		if n > len(b)-off-frameHeaderSize {
			break
		}
		starts = append(starts, off)
		off += frameHeaderSize + n
	}
	for i := len(starts) - 1; i >= 0; i-- {
		h := b[starts[i]:]
		n := binary.LittleEndian.Uint32(h[len(frameMagic):])
		sum := binary.LittleEndian.Uint32(h[len(frameMagic)+4:])
		rec := h[frameHeaderSize : frameHeaderSize+int(n)]
		if crc32.Checksum(rec, castagnoli) == sum {
			return rec, true
		}
	}
	return nil, false
}

// sessionLogs remembers, for each session whose record file this Driver
// wrote last, which file that is and how long: a frame is only appended to
// that very file at that very size. A log written by someone else (another
// process sharing the directory, an earlier process that may have crashed in
// the middle of an append, an earlier version) is replaced by a fresh file
// first, so no frame is ever appended after bytes that are not whole frames.
//
// Writes of one session's record are serialised by one of 256 stripe
// locks, so that an append cannot race a replacement of the same file.
type sessionLogs struct {
	mu   sync.Mutex
	last map[string]logEnd // the record file as this Driver left it

	seed    maphash.Seed
	writing [256]sync.Mutex
}

func newSessionLogs() *sessionLogs {
	return &sessionLogs{last: make(map[string]logEnd), seed: maphash.MakeSeed()}
}

// logEnd is a record file (its identity) and the size this Driver left it at.
type logEnd struct {
	file fs.FileInfo
	size int64
}

// lock serialises the record writes of session id; call the returned
// function to unlock.
func (l *sessionLogs) lock(id string) (unlock func()) {
	m := &l.writing[maphash.String(l.seed, id)%uint64(len(l.writing))]
	m.Lock()
	return m.Unlock
}

// appendable reports whether a frame of n bytes may be appended to a record
// file that is now as cur describes it and that this Driver left as e.
func (e logEnd) appendable(cur fs.FileInfo, n int) bool {
	return os.SameFile(e.file, cur) && cur.Size() == e.size && cur.Size()+int64(n) <= maxSessionLog
}

// get returns how this Driver left the record file of session id, and false
// if it did not write it last.
func (l *sessionLogs) get(id string) (logEnd, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.last[id]
	return e, ok
}

// wrote records that this Driver left the record file of session id, file,
// at size bytes.
func (l *sessionLogs) wrote(id string, file fs.FileInfo, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[id] = logEnd{file, size}
}

// forget drops session id: its log is gone or may end in a partial frame.
func (l *sessionLogs) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, id)
}
