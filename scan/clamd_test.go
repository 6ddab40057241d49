package scan_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"depot/scan"
	"depot/scan/clamdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// payload returns n random bytes with EICAR written at offset at (-1: none).
func payload(t testing.TB, n int, at int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if at >= 0 {
		copy(b[at:], clamdtest.EICAR)
	}
	return b
}

func client(t *testing.T, d *clamdtest.Daemon, timeout time.Duration) *scan.Client {
	t.Helper()
	c, err := scan.NewClient(d.Addr(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseAddr(t *testing.T) {
	for in, ok := range map[string]bool{
		"unix:/run/clamav/clamd.ctl": true, "tcp:127.0.0.1:3310": true, "tcp:clamav:3310": true,
		"unix:relative.sock": false, "tcp:nohost": false, "udp:1.2.3.4:5": false, "/run/clamd.ctl": false, "": false,
	} {
		_, _, err := scan.ParseAddr(in)
		if (err == nil) != ok {
			t.Errorf("ParseAddr(%q): err %v, want ok=%v", in, err, ok)
		}
	}
}

// The client against a real clamd: its version, a clean stream, EICAR in
// a small stream and far into a large one (past several frames).
func TestClientRealClamd(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c := client(t, d, 30*time.Second)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	ver, err := c.Version(ctx)
	if err != nil || !strings.HasPrefix(ver, "ClamAV ") {
		t.Fatalf("version %q, %v", ver, err)
	}
	cases := []struct {
		name     string
		body     []byte
		infected bool
	}{
		{"empty", nil, false},
		{"clean", payload(t, 3<<20, -1), false},
		{"eicar alone", []byte(clamdtest.EICAR), true},
		{"eicar at 20 MiB", payload(t, 24<<20, 20<<20+123), true},
		{"eicar across a frame boundary", payload(t, 3<<20, 1<<20-10), true},
	}
	for _, tc := range cases {
		f, err := c.Scan(ctx, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if f.Infected != tc.infected || (tc.infected && f.Signature != clamdtest.Signature) {
			t.Errorf("%s: finding %+v, want infected=%v", tc.name, f, tc.infected)
		}
	}
}

// A stream longer than clamd's StreamMaxLength is ErrTooLarge, not
// "unavailable".
func TestClientStreamTooLarge(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 1 << 20})
	c := client(t, d, 30*time.Second)
	_, err := c.Scan(context.Background(), bytes.NewReader(payload(t, 4<<20, -1)))
	if !errors.Is(err, scan.ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

// clamd killed in the middle of a stream: the stream fails as unavailable.
func TestClientClamdKilledMidStream(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c := client(t, d, 30*time.Second)
	s, err := c.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(payload(t, 1<<20, -1)); err != nil {
		t.Fatal(err)
	}
	d.Kill()
	for i := 0; i < 64 && s.Err() == nil; i++ { // until the kernel's buffers are full
		s.Write(payload(t, 1<<20, -1))
	}
	if _, err := s.Finish(context.Background()); !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("finish after kill: %v, want ErrUnavailable", err)
	}
	if _, err := c.Version(context.Background()); !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("version after kill: %v", err)
	}
}

// A clamd that does not answer in time (a proxy holds its answer back) is
// unavailable after the client's timeout.
func TestClientClamdSlow(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	p := d.Hold(t)
	c, err := scan.NewClient(p.Addr(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Scan(context.Background(), bytes.NewReader([]byte(clamdtest.EICAR)))
	if !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable (timeout)", err)
	}
	p.Release()
}
