// Package clamdtest starts a real ClamAV daemon (Debian's clamav-daemon,
// installed by scripts/install-clamav.sh) for tests and benchmarks, with no
// network: it writes its own signature database, holding the EICAR test
// string as a body signature, and listens on a Unix socket of its own.
package clamdtest

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// EICAR is the anti-virus test string: harmless, and found by the database
// this package writes wherever it appears in a stream.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Signature is the name clamd reports for EICAR with that database.
const Signature = "Depot.Test.EICAR.UNOFFICIAL"

// Options tune the daemon.
type Options struct {
	// StreamMaxLength is clamd's INSTREAM limit in bytes; 0 means 64 MiB.
	StreamMaxLength int64
}

// Daemon is a running clamd.
type Daemon struct {
	Dir    string // its configuration, database and spool
	Socket string
	opts   Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of clamd, or "" when it is not installed.
func Binary() string {
	for _, p := range []string{"/usr/sbin/clamd", "/usr/bin/clamd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	return ""
}

// Start starts a clamd for t and stops it when t ends. Without clamd it
// skips t, or fails it when CI=true (where scripts/test.sh installs it).
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	if Binary() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("clamd is not installed (scripts/install-clamav.sh installs Debian's clamav-daemon)")
		}
		t.Skip("clamd is not installed; run scripts/install-clamav.sh")
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	return d
}

// New prepares a daemon in a new temporary directory (short, for the
// socket's path): configuration and signature database.
func New(opts Options) (*Daemon, error) {
	if opts.StreamMaxLength <= 0 {
		opts.StreamMaxLength = 64 << 20
	}
	dir, err := os.MkdirTemp("", "clamd-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "clamd.sock"), opts: opts}
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		return nil, err
	}
	sig := "Depot.Test.EICAR:0:*:" + hex.EncodeToString([]byte(EICAR)) + "\n"
	if err := os.WriteFile(filepath.Join(db, "depot-test.ndb"), []byte(sig), 0o644); err != nil {
		return nil, err
	}
	// The file limits are at least the stream limit, so that every byte of
	// an accepted stream is examined.
	conf := fmt.Sprintf(`Foreground yes
LocalSocket %s
DatabaseDirectory %s
TemporaryDirectory %s
StreamMaxLength %d
MaxFileSize %d
MaxScanSize %d
SelfCheck 0
`, d.Socket, db, dir, opts.StreamMaxLength, opts.StreamMaxLength, opts.StreamMaxLength)
	if err := os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// Addr returns the daemon's address as DEPOT_CLAMD_ADDR takes it.
func (d *Daemon) Addr() string { return "unix:" + d.Socket }

// Run starts clamd and returns once it listens (it prints its settings
// after it bound its socket, ending with "Self checking …"), or fails after
// 60 s.
func (d *Daemon) Run() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return errors.New("clamdtest: already running")
	}
	_ = os.Remove(d.Socket)
	cmd := exec.Command(Binary(), "-c", filepath.Join(d.Dir, "clamd.conf"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "Self checking") {
				signalled = true
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("clamdtest: clamd exited at start: %s", stderr.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("clamdtest: clamd did not start within 60 s")
	}
	d.cmd, d.done = cmd, done
	return nil
}

// Kill kills clamd at once (SIGKILL) and waits until it is gone.
func (d *Daemon) Kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
	_ = os.Remove(d.Socket)
}

// Close stops clamd and removes its directory.
func (d *Daemon) Close() {
	d.Kill()
	_ = os.RemoveAll(d.Dir)
}

// Cmd returns the running clamd process (for its CPU and memory), or nil.
func (d *Daemon) Cmd() *exec.Cmd {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd
}

// Running reports whether clamd was started and not killed.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil
}
