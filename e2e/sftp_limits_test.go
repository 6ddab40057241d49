package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// dialSFTP opens an SFTP session as alice with her key (pkg/sftp's client:
// it can send writes in any order, which the OpenSSH clients never do).
func (s *sftpCluster) dialSFTP(t *testing.T) (*sftpConn, error) {
	t.Helper()
	pem, err := os.ReadFile(s.key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	sc := &sftpConn{Client: c, conn: conn}
	t.Cleanup(func() { sc.Close() })
	return sc, nil
}

// sftpConn is an SFTP session and its SSH connection, closed together.
type sftpConn struct {
	*sftp.Client
	conn *ssh.Client
}

func (c *sftpConn) Close() error {
	c.Client.Close()
	return c.conn.Close()
}

// TestSFTPLimits: the SFTP entrance is held to the limits of every
// entrance (upload size, uploads per user, the chunk pool) and to its own
// (connections, the reorder window); each refusal is a clear status, the
// refused upload never becomes visible, and many sessions with a slow one
// among them all finish with the web process's memory bounded.
func TestSFTPLimits(t *testing.T) {
	const chunk = 1 << 20
	s := newSFTPCluster(t, map[string]string{
		"DEPOT_CHUNK_SIZE": fmt.Sprint(chunk), "DEPOT_MAX_BUFFERS": "6", "DEPOT_MAX_UPLOADS_PER_USER": "3",
		"DEPOT_MAX_UPLOAD_SIZE": fmt.Sprint(20 << 20), "DEPOT_SFTP_MAX_CONNECTIONS": "12",
	})
	c, err := s.dialSFTP(t)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*chunk/16+7) // 3 MiB + 112
	sum := sha256.Sum256(data)

	// Writes out of order within the window (the next chunk) are put in
	// place; the file commits whole.
	f, err := c.Create("/c1/lim/reorder.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, piece := range [][2]int{{chunk + 4096, 2 * chunk}, {chunk, chunk + 4096}, {4096, chunk}, {100, 4096}, {0, 100},
		{2 * chunk, 3 * chunk}, {3 * chunk, len(data)}} {
		if _, err := f.WriteAt(data[piece[0]:piece[1]], int64(piece[0])); err != nil {
			t.Fatalf("WriteAt %d: %v", piece[0], err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, got := s.fileSHA(t, "c1/lim/reorder.bin"); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("reordered writes stored as %s", got)
	}

	// A write past the window is refused, and so is the file.
	f, err = c.Create("/c1/lim/ahead.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[:10], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[:10], 5*chunk); err == nil || !strings.Contains(err.Error(), "reorder window") {
		t.Fatalf("a write 5 chunks ahead: %v", err)
	}
	if err := f.Close(); err == nil {
		t.Fatalf("a file with a refused write was committed")
	}
	if n, _ := s.fileSHA(t, "c1/lim/ahead.bin"); n != -1 {
		t.Fatalf("a refused upload is visible")
	}

	// DEPOT_MAX_UPLOAD_SIZE.
	f, err = c.Create("/c1/lim/huge.bin")
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for off := 0; off < 21<<20 && werr == nil; off += 32 << 10 {
		_, werr = f.WriteAt(make([]byte, 32<<10), int64(off))
	}
	if werr == nil || !strings.Contains(werr.Error(), "limit") {
		t.Fatalf("a write past DEPOT_MAX_UPLOAD_SIZE: %v", werr)
	}
	f.Close()
	if n, _ := s.fileSHA(t, "c1/lim/huge.bin"); n != -1 {
		t.Fatalf("an upload over the size limit is visible")
	}

	// DEPOT_MAX_UPLOADS_PER_USER: the fourth open write is refused at once.
	var open []*sftp.File
	for i := range 3 {
		f, err := c.Create(fmt.Sprintf("/c1/lim/slot%d.bin", i))
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		open = append(open, f)
	}
	if _, err := c.Create("/c1/lim/slot3.bin"); err == nil || !strings.Contains(err.Error(), "uploads in progress") {
		t.Fatalf("a fourth concurrent upload: %v", err)
	}
	for _, f := range open {
		f.Write([]byte("x"))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// At most 4 SFTP sessions on one SSH connection.
	for i := range 5 {
		_, err := sftp.NewClient(c.conn)
		if (err == nil) != (i < 3) { // c holds the first
			t.Fatalf("session %d on one connection: %v", i+2, err)
		}
	}
	c.Close()

	// DEPOT_SFTP_MAX_CONNECTIONS: 12 held; the 13th is closed at once.
	var held []*sftpConn
	for range 12 {
		hc, err := s.dialSFTP(t)
		if err != nil {
			t.Fatalf("connection %d: %v", len(held), err)
		}
		held = append(held, hc)
	}
	start := time.Now()
	if _, err := s.dialSFTP(t); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a 13th connection: %v after %s", err, time.Since(start))
	}
	for _, hc := range held {
		hc.Close()
	}

	// Many sessions at once, one of them slow, through a pool of 6
	// buffers: all finish, and web's memory stays bounded.
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	waitFor(t, 5*time.Second, func() bool { _, err := s.dialSFTP(t); return err == nil })
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.uploadVia(t, fmt.Sprintf("/c1/many/%d.bin", i), data, i == 0)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range 10 {
		if _, got := s.fileSHA(t, fmt.Sprintf("c1/many/%d.bin", i)); got != hex.EncodeToString(sum[:]) {
			t.Errorf("many/%d.bin stored as %s", i, got)
		}
	}
	peak := procStatusKiB(t, s.web.pid(), "VmHWM")
	if limit := int64(6*chunk+120<<20) >> 10; peak > limit {
		t.Errorf("web peak RSS %d KiB, want under %d KiB", peak, limit)
	}
	t.Logf("web peak RSS %d KiB", peak)
}

// uploadVia uploads data to path over its own connection; a slow one
// sends 32 KiB pieces 20 ms apart for its first 512 KiB.
func (s *sftpCluster) uploadVia(t *testing.T, path string, data []byte, slow bool) error {
	for attempt := 0; ; attempt++ {
		c, err := s.dialSFTP(t)
		if err != nil {
			if attempt < 20 { // a connection slot frees up
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return err
		}
		f, err := c.Create(path)
		if err != nil {
			if attempt < 50 && strings.Contains(err.Error(), "uploads in progress") {
				c.Close()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		off := 0
		if slow {
			for ; off < 512<<10; off += 32 << 10 {
				if _, err := f.Write(data[off : off+32<<10]); err != nil {
					return err
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if _, err := f.Write(data[off:]); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return f.Close()
	}
}
