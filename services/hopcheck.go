package services

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"

	"depot"
	"depot/internal/wire"
)

// errHopDamaged is the error of an append whose bytes differ from the
// CRC-32C its sender computed: damaged on the internal hop (or in the
// sender's or this process's memory). The append counts for nothing and
// is answered as transient, so that web sends the chunk again.
var errHopDamaged = errors.New("the bytes received differ from the bytes sent (CRC-32C)")

// hopChecked returns the body of append request r, checked against its
// HeaderCRC32C if it has one, and how many bytes the append must take as one
// segment for the check to decide whether they count (0: no check). A
// checked body must declare its length.
func hopChecked(r *http.Request, body io.Reader) (io.Reader, int64, error) {
	v := r.Header.Get(wire.HeaderCRC32C)
	if v == "" {
		return body, 0, nil
	}
	want, err := strconv.ParseUint(v, 16, 32)
	if err != nil || len(v) != 8 {
		return nil, 0, depot.Errorf(depot.CodeInvalid, "invalid %s header", wire.HeaderCRC32C)
	}
	if r.ContentLength < 0 {
		return nil, 0, depot.Errorf(depot.CodeInvalid, "an append with %s needs a Content-Length", wire.HeaderCRC32C)
	}
	return &crcChecked{r: body, crc: crc32.New(crc32.MakeTable(crc32.Castagnoli)), want: uint32(want), left: r.ContentLength}, r.ContentLength, nil
}

// crcChecked reads left bytes from r and, with the last of them, fails
// with errHopDamaged unless their CRC-32C is want: the Store then writes
// them but does not count them (a failed write leaves the offset where it
// was).
type crcChecked struct {
	r    io.Reader
	crc  hash.Hash32
	want uint32
	left int64
}

func (c *crcChecked) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	c.left -= int64(n)
	if c.left > 0 {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	if got := c.crc.Sum32(); got != c.want {
		return n, depot.WrapError(depot.CodeUnavailable, "the request body was damaged in transit",
			fmt.Errorf("%w: got %08x, want %08x", errHopDamaged, got, c.want))
	}
	return n, io.EOF
}
