package apiclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
)

// wholeChunkConn lets the transport send a chunk straight from its buffer.
// net/http copies a request body of known length with
// io.Copy(conn, io.LimitReader(body, length)); the LimitedReader hides
// bytes.Reader's WriterTo, so net.TCPConn falls back to 32 KiB writes
// through an intermediate buffer (a copy of every byte, and 256 write(2)s
// per 8 MiB chunk: a fifth of the web tier's CPU, profiled). ReadFrom
// recognises a LimitedReader that covers a whole bytes.Reader and writes
// the reader's bytes in one call; anything else goes the usual way. Over
// TLS the transport writes to a tls.Conn instead and this is not used.
type wholeChunkConn struct{ net.Conn }

// ReadFrom implements io.ReaderFrom.
func (c wholeChunkConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(chunkBody); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(c.Conn)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// chunkBody is the request body of an in-memory chunk: a bytes.Reader whose
// length wholeChunkConn can see (io.NopCloser would hide it).
type chunkBody struct{ *bytes.Reader }

func (chunkBody) Close() error { return nil }

// setChunkBody makes req send br as a chunkBody, also when the transport
// asks for the body again to retry the request.
func setChunkBody(req *http.Request, br *bytes.Reader) {
	snapshot := *br
	req.Body = chunkBody{br}
	req.GetBody = func() (io.ReadCloser, error) {
		r := snapshot
		return chunkBody{&r}, nil
	}
}

// CloseWrite half-closes the connection when the underlying one can.
func (c wholeChunkConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// dialWholeChunks wraps dial's connections in wholeChunkConn.
func dialWholeChunks(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wholeChunkConn{Conn: conn}, nil
	}
}
