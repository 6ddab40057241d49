// Package benchkit holds what depot's benchmarks share: starting the real
// binary's tiers, running its commands, and reading sizes and peak memory.
package benchkit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ParseSize parses a positive byte count with an optional KiB, MiB or GiB
// suffix.
func ParseSize(s string) (int64, error) {
	mult, num := int64(1), s
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(num, u.suf) {
			mult, num = u.m, strings.TrimSuffix(num, u.suf)
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 2GiB, 256MiB, 4KiB)", s)
	}
	return v * mult, nil
}

// Median returns the median of v (the mean of the middle two for an even
// count, 0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Build compiles ./cmd/depot (run from the module root) into dir and
// returns the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "depot")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/depot").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build: %v: %s", err, out)
	}
	return bin, nil
}

// CLI runs a depot command against the database db and returns its stdout.
func CLI(bin, db string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DEPOT_DATABASE_URL="+db)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("depot %v: %v: %s", args, err, ee.Stderr)
	}
	return string(out), err
}

// Account creates, in the database db, the benchmarks' user "bench" with
// the uploader role in cohort "b", and returns a new token of that user.
func Account(bin, db string) (token string, err error) {
	for _, args := range [][]string{{"migrate"}, {"users", "add", "bench"}, {"cohorts", "add", "b"}, {"cohorts", "grant", "bench", "b", "uploader"}} {
		if _, err := CLI(bin, db, args...); err != nil {
			return "", err
		}
	}
	out, err := CLI(bin, db, "tokens", "create", "bench")
	return strings.TrimSpace(out), err
}

// Payload returns bytes [off, size) of a deterministic pseudo-random stream
// chosen by seed, generated on the fly (nothing on disk).
func Payload(size int64, seed int, off int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	r := io.LimitReader(rand.NewChaCha8(s), size)
	if off > 0 {
		_, _ = io.CopyN(io.Discard, r, off)
	}
	return r
}

// Serve starts "depot serve" with env added to this process's environment
// and returns it with the address it logged as listening. The process dies
// with the benchmark (Pdeathsig); its warnings and errors are copied to
// this process's stderr.
func Serve(bin string, env ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	addr := make(chan string, 1)
	logc := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr, Level string }
			_ = json.Unmarshal(sc.Bytes(), &rec)
			if rec.Level == "WARN" || rec.Level == "ERROR" {
				fmt.Fprintf(os.Stderr, "depot: %s\n", sc.Bytes())
			}
			if rec.Msg == "listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
			select {
			case logc <- sc.Text():
			default:
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		var logs strings.Builder
		for len(logc) > 0 {
			logs.WriteString(<-logc + "\n")
		}
		return nil, "", fmt.Errorf("depot %v did not start:\n%s", env, logs.String())
	}
}

// Stop interrupts cmd and waits, killing it after 10 s.
func Stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// VmHWM returns a process's peak resident set in KiB, -1 if unknown.
func VmHWM(pid int) int64 { return StatusKiB(pid, "VmHWM") }

// StatusKiB reads one field (VmHWM, VmRSS) of /proc/<pid>/status in KiB,
// -1 if unknown.
func StatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}
