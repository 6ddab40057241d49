// Package benchkit holds what depot's benchmarks share: starting the real
// binary's tiers, running its commands, and reading sizes and peak memory.
package benchkit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParseSize parses a byte count with an optional MiB or GiB suffix.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "GiB"):
		mult, s = 1<<30, strings.TrimSuffix(s, "GiB")
	case strings.HasSuffix(s, "MiB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MiB")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v * mult, err
}

// Median returns the median of v (the upper one for an even count).
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// CLI runs a depot command against the database db and returns its stdout.
func CLI(bin, db string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DEPOT_DATABASE_URL="+db)
	out, err := cmd.Output()
	return string(out), err
}

// Serve starts "depot serve" with env added to this process's environment
// and returns it with the address it logged as listening.
func Serve(bin string, env ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	addr := make(chan string, 1)
	var logs strings.Builder
	logc := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
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
		for len(logc) > 0 {
			logs.WriteString(<-logc + "\n")
		}
		return nil, "", fmt.Errorf("%v did not start:\n%s", env[0], logs.String())
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
func VmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}
