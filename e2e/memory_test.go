package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procReadBytes reads rchar (bytes read by any read(2)) from /proc/<pid>/io.
func procReadBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	t.Fatalf("no rchar in /proc/%d/io", pid)
	return 0
}

// waitQuiet waits until pid has read at least min bytes more than from and
// then reads nothing for quiet: it has taken all it will take for now.
func waitQuiet(t *testing.T, pid int, from, min int64, quiet time.Duration) int64 {
	t.Helper()
	last, since := procReadBytes(t, pid), time.Now()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := procReadBytes(t, pid)
		if n != last {
			last, since = n, time.Now()
			continue
		}
		if n-from >= min && time.Since(since) >= quiet {
			return n
		}
	}
	t.Fatalf("web read %d bytes and did not settle (wanted at least %d)", last-from, min)
	return 0
}

// TestChecksummedPatchesBoundedMemory sends 60 tus PATCHes at once, each
// with Upload-Checksum and an 8 MiB body whose last byte is withheld, to a
// web tier with DEPOT_MAX_BUFFERS=4. A checksummed body must be held until
// verified, and before the fix each was held in a buffer of its own (the
// review saw 20 → 846 MiB). Now each takes a buffer of the bounded pool
// before reading, so web's memory stays within 4 × 8 MiB and a small
// amount per connection; every upload completes once its last byte comes.
func TestChecksummedPatchesBoundedMemory(t *testing.T) {
	const uploads, size, buffers = 60, 8 << 20, 4
	c := newCluster(t, clusterOpts{webEnv: map[string]string{
		"DEPOT_MAX_BUFFERS": strconv.Itoa(buffers), "DEPOT_MAX_UPLOADS_PER_USER": "0",
	}})
	data, _ := payloadBytes(41, size)
	sum := sha256.Sum256(data)
	checksum := "sha256 " + base64.StdEncoding.EncodeToString(sum[:])
	locs := make([]string, uploads)
	for i := range locs {
		locs[i] = tusCreate(t, c.web.url(), c.token, size, fmt.Sprintf("mem/%02d.bin", i))
	}
	rssBefore := procStatusKiB(t, c.web.pid(), "VmRSS")
	readBefore := procReadBytes(t, c.web.pid())

	conns := make([]net.Conn, uploads)
	lastByte := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(lastByte) }) }
	var wg sync.WaitGroup
	defer func() {
		release()
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
		wg.Wait()
	}()
	for i, loc := range locs {
		conn, err := net.Dial("tcp", c.web.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
				"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nUpload-Checksum: %s\r\nContent-Length: %d\r\n\r\n",
				loc, c.token, checksum, size)
			if _, err := conn.Write(data[:size-1]); err != nil { // returns once web or the socket buffers took it
				return
			}
			<-lastByte
			conn.Write(data[size-1:])
		}()
	}
	// Web has read all it will read while every last byte is withheld.
	waitQuiet(t, c.web.pid(), readBefore, buffers*(size-1), time.Second)
	rssHeld := procStatusKiB(t, c.web.pid(), "VmRSS")
	release()

	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("PATCH %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH %d: status %d", i, resp.StatusCode)
		}
	}
	peak := procStatusKiB(t, c.web.pid(), "VmHWM")
	t.Logf("%d checksummed PATCHes of %d MiB, last byte withheld, DEPOT_MAX_BUFFERS=%d: web RSS %d KiB before, %d KiB while held, peak %d KiB",
		uploads, size>>20, buffers, rssBefore, rssHeld, peak)
	// The pool (4 × 8 MiB) plus 256 KiB per connection and 32 MiB for the
	// runtime and the pool's growth: far below the 60 × 8 MiB an
	// unbounded buffer per PATCH takes.
	bound := rssBefore + buffers*size>>10 + uploads*256 + 32<<10
	if peak > bound {
		t.Errorf("web's peak RSS %d KiB is past the bound %d KiB", peak, bound)
	}
	for i := range locs {
		checkOnDisk(t, c, fmt.Sprintf("mem/%02d.bin", i), data)
	}
}
