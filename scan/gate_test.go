package scan_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"depot"
	"depot/scan"
	"depot/scan/clamdtest"
	"depot/storage"
)

// session plays the part of the Store for a Gate: it keeps the accepted
// bytes of one upload and reads every chunk's body as the Store would.
type session struct {
	t      *testing.T
	g      *scan.Gate
	id     string
	stored []byte
	opened int // how often the stored bytes were read again
}

// append sends data at the session's offset through the gate; damaged
// makes the "Store" read half of it and refuse the chunk (a CRC failure).
func (s *session) append(data []byte, damaged bool) {
	s.t.Helper()
	c := storage.Chunk{Offset: int64(len(s.stored)), Length: int64(len(data)), Body: bytes.NewReader(data)}
	c, done := s.g.Tee(context.Background(), s.id, c)
	if damaged {
		io.CopyN(io.Discard, c.Body, int64(len(data)/2))
		done(errors.New("damaged"), int64(len(s.stored)))
		return
	}
	got, err := io.ReadAll(io.LimitReader(c.Body, c.Length))
	if err != nil || !bytes.Equal(got, data) {
		s.t.Fatalf("the body passed on differs: %v", err)
	}
	s.stored = append(s.stored, data...)
	done(nil, int64(len(s.stored)))
}

// retryLast sends the last chunk again after it landed (its answer lost).
func (s *session) retryLast(data []byte) {
	c := storage.Chunk{Offset: int64(len(s.stored) - len(data)), Length: int64(len(data)), Body: bytes.NewReader(data)}
	_, done := s.g.Tee(context.Background(), s.id, c)
	done(nil, int64(len(s.stored))) // the Store answers without reading it
}

func (s *session) verdict() (scan.Verdict, error) {
	return s.g.Verdict(context.Background(), s.id, int64(len(s.stored)), func(context.Context) (io.ReadCloser, error) {
		s.opened++
		return io.NopCloser(bytes.NewReader(s.stored)), nil
	})
}

func newGate(t *testing.T, d *clamdtest.Daemon, p scan.Policy) *scan.Gate {
	t.Helper()
	return scan.NewGate(client(t, d, 10*time.Second), p, nil)
}

func TestGateStreamsAcceptedBytes(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	g := newGate(t, d, scan.Policy{})
	chunk := func(i int, eicar bool) []byte {
		at := -1
		if eicar {
			at = 100
		}
		return payload(t, 1<<20, at)
	}

	t.Run("clean, from the stream", func(t *testing.T) {
		s := &session{t: t, g: g, id: storage.NewID()}
		for i := range 3 {
			s.append(chunk(i, false), false)
		}
		v, err := s.verdict()
		if err != nil || v.Status != depot.ScanClean || v.Source != scan.SourceStream || s.opened != 0 || v.Engine == "" {
			t.Fatalf("verdict %+v, %v, reads %d", v, err, s.opened)
		}
		if g.Streams() != 0 {
			t.Fatalf("%d streams left", g.Streams())
		}
	})
	t.Run("infected past the first chunk, from the stream", func(t *testing.T) {
		s := &session{t: t, g: g, id: storage.NewID()}
		s.append(chunk(0, false), false)
		s.append(chunk(1, false), false)
		s.append(chunk(2, true), false)
		v, err := s.verdict()
		if depot.ErrorCode(err) != depot.CodeInfected || v.Source != scan.SourceStream || s.opened != 0 {
			t.Fatalf("verdict %+v, %v, reads %d", v, err, s.opened)
		}
		if got, ok := scan.VerdictOf(err); !ok || got.Signature != clamdtest.Signature || got.Metadata()["scan_result"] != "infected" {
			t.Fatalf("verdict of the error: %+v %v", got, ok)
		}
	})
	t.Run("a retried chunk that had landed keeps the stream", func(t *testing.T) {
		s := &session{t: t, g: g, id: storage.NewID()}
		c0 := chunk(0, false)
		s.append(c0, false)
		s.retryLast(c0)
		s.append(chunk(1, true), false)
		v, err := s.verdict()
		if depot.ErrorCode(err) != depot.CodeInfected || v.Source != scan.SourceStream {
			t.Fatalf("verdict %+v, %v", v, err)
		}
	})
	t.Run("a damaged chunk sends the scan to the stored bytes", func(t *testing.T) {
		s := &session{t: t, g: g, id: storage.NewID()}
		c1 := chunk(1, true) // its first half, sent to clamd, holds EICAR
		s.append(chunk(0, false), false)
		s.append(c1, true)
		s.append(c1, false)
		v, err := s.verdict()
		if depot.ErrorCode(err) != depot.CodeInfected || v.Source != scan.SourceStored || s.opened != 1 {
			t.Fatalf("verdict %+v, %v, reads %d", v, err, s.opened)
		}
	})
	t.Run("a session continued without its stream (a restart)", func(t *testing.T) {
		s := &session{t: t, g: g, id: storage.NewID(), stored: chunk(0, false)}
		s.append(chunk(1, false), false)
		v, err := s.verdict()
		if err != nil || v.Status != depot.ScanClean || v.Source != scan.SourceStored || s.opened != 1 {
			t.Fatalf("verdict %+v, %v, reads %d", v, err, s.opened)
		}
	})
	t.Run("beyond the stream limit, scanned at completion", func(t *testing.T) {
		g := newGate(t, d, scan.Policy{Streams: 1})
		a := &session{t: t, g: g, id: storage.NewID()}
		b := &session{t: t, g: g, id: storage.NewID()}
		a.append(chunk(0, false), false)
		b.append(chunk(0, true), false)
		va, erra := a.verdict()
		vb, errb := b.verdict()
		if erra != nil || va.Source != scan.SourceStream || depot.ErrorCode(errb) != depot.CodeInfected || vb.Source != scan.SourceStored {
			t.Fatalf("a %+v %v; b %+v %v", va, erra, vb, errb)
		}
	})
}

func TestGateScannerDown(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	closed := newGate(t, d, scan.Policy{})
	open := newGate(t, d, scan.Policy{FailOpen: true})
	a := &session{t: t, g: closed, id: storage.NewID()}
	b := &session{t: t, g: open, id: storage.NewID()}
	a.append(payload(t, 1<<20, -1), false)
	b.append(payload(t, 1<<20, -1), false)
	d.Kill() // mid-upload: the streams break, the re-read cannot be scanned either
	a.append(payload(t, 1<<20, -1), false)
	b.append(payload(t, 1<<20, -1), false)
	if _, err := a.verdict(); depot.ErrorCode(err) != depot.CodeUnavailable {
		t.Fatalf("fail closed: %v, want unavailable", err)
	}
	v, err := b.verdict()
	if err != nil || v.Status != depot.ScanUnscanned || v.Reason != scan.ReasonUnavailable {
		t.Fatalf("fail open: %+v, %v", v, err)
	}
	// clamd back: the session's retried completion scans the stored bytes.
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	if v, err := a.verdict(); err != nil || v.Status != depot.ScanClean || v.Source != scan.SourceStored {
		t.Fatalf("after clamd came back: %+v, %v", v, err)
	}
}

func TestGateOversize(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 1 << 20})
	refuse := newGate(t, d, scan.Policy{MaxSize: 1 << 20})
	keep := newGate(t, d, scan.Policy{MaxSize: 1 << 20, Oversize: scan.OversizeUnscanned})
	if err := refuse.Admit(2 << 20); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Fatalf("admit: %v", err)
	}
	if err := keep.Admit(2 << 20); err != nil {
		t.Fatalf("admit (unscanned policy): %v", err)
	}
	a := &session{t: t, g: refuse, id: storage.NewID()}
	b := &session{t: t, g: keep, id: storage.NewID()}
	for range 2 {
		a.append(payload(t, 768<<10, 0), false)
		b.append(payload(t, 768<<10, 0), false)
	}
	if _, err := a.verdict(); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Fatalf("refuse: %v", err)
	}
	if v, err := b.verdict(); err != nil || v.Status != depot.ScanUnscanned || v.Reason != scan.ReasonTooLarge || b.opened != 0 {
		t.Fatalf("unscanned: %+v, %v", v, err)
	}
	// clamd's own limit lower than the policy's: the same outcome.
	lax := newGate(t, d, scan.Policy{})
	c := &session{t: t, g: lax, id: storage.NewID()}
	c.append(payload(t, 2<<20, -1), false)
	if _, err := c.verdict(); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Fatalf("clamd's limit: %v", err)
	}
}

func TestGateRescan(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	g := newGate(t, d, scan.Policy{FailOpen: true})
	body := payload(t, 5<<20, 4<<20)
	v, err := g.Rescan(context.Background(), int64(len(body)), func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	})
	if err != nil || v.Status != depot.ScanInfected || v.Signature != clamdtest.Signature {
		t.Fatalf("rescan: %+v, %v", v, err)
	}
	d.Kill()
	// A rescan never commits anything: the scanner down is an error even
	// under fail-open.
	if _, err := g.Rescan(context.Background(), 1, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader([]byte{1})), nil
	}); depot.ErrorCode(err) != depot.CodeUnavailable {
		t.Fatalf("rescan with clamd down: %v", err)
	}
}
