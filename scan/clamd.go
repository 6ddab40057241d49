// Package scan is depot's malware scanning: a client of the ClamAV daemon
// (clamd) and the Gate that services puts in front of every commit.
//
// The client speaks clamd's own protocol over a Unix or TCP socket:
// zVERSION for the engine and signature database, and zINSTREAM for the
// bytes, sent as frames of a 4-byte big-endian length and that many bytes,
// ended by a frame of length 0, after which clamd answers "stream: OK",
// "stream: <signature> FOUND" or "<reason> ERROR". clamd spools the stream
// to a file of its own and scans it when the stream ends, so the time of
// the scan itself is spent at the end.
//
// Nothing here logs file names or contents; a verdict carries the
// signature's name, which is not PHI.
package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrUnavailable is wrapped by every error of a clamd that cannot be
// reached, breaks the connection or does not answer in time.
var ErrUnavailable = errors.New("scan: clamd unavailable")

// ErrTooLarge is wrapped by the error of a stream clamd refused as longer
// than its StreamMaxLength.
var ErrTooLarge = errors.New("scan: stream longer than clamd's StreamMaxLength")

// maxFrame is the largest INSTREAM frame sent; longer writes are split.
const maxFrame = 1 << 20

// Client talks to one clamd. Every call opens its own connection, so a
// Client is safe for concurrent use.
type Client struct {
	Network string // "unix" or "tcp"
	Addr    string
	// Timeout bounds each wait on clamd: a connection, a write, and the
	// answer after a stream ended (the scan itself). Zero means 30 s.
	Timeout time.Duration
}

// ParseAddr parses DEPOT_CLAMD_ADDR: "unix:/path/to/clamd.ctl" or
// "tcp:host:port".
func ParseAddr(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, ":")
	switch {
	case !ok || addr == "":
	case network == "unix" && strings.HasPrefix(addr, "/"):
		return network, addr, nil
	case network == "tcp":
		if _, _, err := net.SplitHostPort(addr); err == nil {
			return network, addr, nil
		}
	}
	return "", "", fmt.Errorf("clamd address %q: want unix:/absolute/path or tcp:host:port", s)
}

// NewClient returns a client of the clamd at addr (see ParseAddr).
func NewClient(addr string, timeout time.Duration) (*Client, error) {
	network, a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	return &Client{Network: network, Addr: a, Timeout: timeout}, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 30 * time.Second
	}
	return c.Timeout
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.timeout()}
	conn, err := d.DialContext(ctx, c.Network, c.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return conn, nil
}

// Version returns clamd's answer to VERSION: "ClamAV 1.4.6/27480/Tue Dec
// 2 09:27:04 2025" (engine / signature database version / its date), or
// "ClamAV 1.4.6" when clamd loaded no versioned database.
func (c *Client) Version(ctx context.Context) (string, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := conn.Write([]byte("zVERSION\x00")); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return readReply(conn)
}

// Ping checks that clamd answers PING with PONG.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(c.timeout()))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: PING answered %q", ErrUnavailable, reply)
	}
	return nil
}

// Scan sends all of r to clamd and returns its finding.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Finding, error) {
	s, err := c.Open(ctx)
	if err != nil {
		return Finding{}, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, maxFrame)
	for {
		if err := ctx.Err(); err != nil {
			return Finding{}, fmt.Errorf("%w: %w", ErrUnavailable, context.Cause(ctx))
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := s.Write(buf[:n]); err != nil {
				return Finding{}, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Finding{}, fmt.Errorf("scan: read the bytes to scan: %w", rerr)
		}
	}
	return s.Finish(ctx)
}

// Finding is clamd's answer about one stream.
type Finding struct {
	Infected  bool
	Signature string // the signature found, when Infected
}

// Stream is one INSTREAM in progress: Write sends bytes, Finish ends the
// stream and waits for the finding, Close abandons it. It is not safe for
// concurrent use.
type Stream struct {
	c    *Client
	conn net.Conn
	hdr  [4]byte
	err  error // sticky: the first failure
	n    int64
}

// Open starts an INSTREAM.
func (c *Client) Open(ctx context.Context) (*Stream, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	s := &Stream{c: c, conn: conn}
	conn.SetWriteDeadline(time.Now().Add(c.timeout()))
	if _, err := conn.Write([]byte("zINSTREAM\x00")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return s, nil
}

// Len returns the bytes written so far.
func (s *Stream) Len() int64 { return s.n }

// Err returns the first failure of the stream, if any.
func (s *Stream) Err() error { return s.err }

// Write sends p as INSTREAM frames, each write bounded by the client's
// timeout. After a failure every call returns it.
func (s *Stream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	written := 0
	for len(p) > 0 {
		f := p[:min(len(p), maxFrame)]
		binary.BigEndian.PutUint32(s.hdr[:], uint32(len(f)))
		s.conn.SetWriteDeadline(time.Now().Add(s.c.timeout()))
		bufs := net.Buffers{s.hdr[:], f}
		if _, err := bufs.WriteTo(s.conn); err != nil {
			s.err = s.writeFailed(err)
			return written, s.err
		}
		written += len(f)
		s.n += int64(len(f))
		p = p[len(f):]
	}
	return written, nil
}

// writeFailed explains a failed write: clamd closes a stream that passed
// its StreamMaxLength after saying so, which a short read may still find.
func (s *Stream) writeFailed(err error) error {
	s.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if reply, rerr := readReply(s.conn); rerr == nil {
		if _, ferr := parseFinding(reply); ferr != nil {
			return ferr
		}
	}
	return fmt.Errorf("%w: write: %w", ErrUnavailable, err)
}

// Finish ends the stream and returns clamd's finding; it closes the
// stream.
func (s *Stream) Finish(ctx context.Context) (Finding, error) {
	defer s.Close()
	if s.err != nil {
		return Finding{}, s.err
	}
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	s.conn.SetDeadline(time.Now().Add(s.c.timeout()))
	if _, err := s.conn.Write([]byte{0, 0, 0, 0}); err != nil {
		s.err = s.writeFailed(err)
		return Finding{}, s.err
	}
	reply, err := readReply(s.conn)
	if err != nil {
		return Finding{}, err
	}
	return parseFinding(reply)
}

// Close abandons the stream (clamd discards what it spooled).
func (s *Stream) Close() error {
	if s.err == nil {
		s.err = fmt.Errorf("%w: stream closed", ErrUnavailable)
	}
	return s.conn.Close()
}

// readReply reads one NUL-terminated answer (at most 4 KiB).
func readReply(conn net.Conn) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(conn, 4096), 512)
	b, err := br.ReadBytes(0)
	if err != nil {
		return "", fmt.Errorf("%w: read answer: %w", ErrUnavailable, err)
	}
	return string(bytes.TrimRight(b, "\x00\n")), nil
}

// parseFinding reads an INSTREAM answer.
func parseFinding(reply string) (Finding, error) {
	body, ok := strings.CutPrefix(reply, "stream: ")
	switch {
	case ok && body == "OK":
		return Finding{}, nil
	case ok && strings.HasSuffix(body, " FOUND"):
		return Finding{Infected: true, Signature: strings.TrimSuffix(body, " FOUND")}, nil
	case strings.Contains(reply, "size limit exceeded"):
		return Finding{}, fmt.Errorf("%w: %s", ErrTooLarge, reply)
	}
	return Finding{}, fmt.Errorf("%w: clamd answered %q", ErrUnavailable, reply)
}
