package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"depot/bench/internal/benchkit"
)

// group is one measured party (a process, or nginx's master and workers).
type group struct {
	name string
	pids func() []int
}

func single(name string, cmd *exec.Cmd) group {
	pid := cmd.Process.Pid
	return group{name, func() []int { return []int{pid} }}
}

// withChildren is the process and its direct children (nginx workers).
func withChildren(name string, pid int) group {
	return group{name, func() []int {
		pids := []int{pid}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		return pids
	}}
}

const clkTck = 100 // USER_HZ on Linux

// cpuSeconds is utime+stime of a process.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields after the command: state(3) ppid(4) ... utime(14) stime(15)
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck
}

// selfCPU is the user and system time of this process (the benchmark
// client; no other measurement runs beside it).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func groupCPU(g group) float64 {
	var t float64
	for _, p := range g.pids() {
		t += cpuSeconds(p)
	}
	return t
}

// groupHWM is the sum of the peak RSS of the group's processes, in MiB.
func groupHWM(g group) float64 {
	var t int64
	for _, p := range g.pids() {
		t += max(benchkit.VmHWM(p), 0)
	}
	return float64(t) / 1024
}

// resetHWM resets VmHWM to the current RSS (clear_refs 5).
func resetHWM(g group) {
	for _, p := range g.pids() {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p), []byte("5"), 0)
	}
}

func stop(cmd *exec.Cmd, sig os.Signal) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reachable: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
