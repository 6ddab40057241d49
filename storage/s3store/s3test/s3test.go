// Package s3test runs versitygw, the S3-compatible server of depot's tests
// and benchmarks, on loopback. It is used by tests and bench/ only.
package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// ModuleRoot walks up from the working directory to the directory that
// holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("s3test: go.mod not found")
		}
		dir = parent
	}
}

// Binary returns the versitygw binary: $DEPOT_VERSITYGW, or
// .cache/bin/versitygw under the module root. When it is missing and CI is
// "true" it is built with scripts/s3-server.sh install; otherwise skip says
// why the caller should skip (and err is nil).
func Binary() (bin, skip string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	bin = os.Getenv("DEPOT_VERSITYGW")
	if bin == "" {
		bin = filepath.Join(root, ".cache", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, "", nil
	}
	if os.Getenv("CI") != "true" {
		return "", fmt.Sprintf("versitygw not installed at %s (run scripts/s3-server.sh install)", bin), nil
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "s3-server.sh"), "install")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("scripts/s3-server.sh install: %v\n%s", err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf("versitygw still missing after install: %v", err)
	}
	return bin, "", nil
}

// Server is a running versitygw process.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Addr     string // 127.0.0.1:PORT
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     lockedBuffer
}

// Start runs bin serving the posix directory dir (created if missing) on a
// free loopback port, with the given root credentials, and waits up to 30 s
// until it accepts connections.
func Start(bin, dir, access, secret string) (*Server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("versitygw: %v (run scripts/s3-server.sh install)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: "http://" + addr, Addr: addr, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "--port", addr, "posix", dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+access, "ROOT_SECRET_KEY="+secret)
	s.cmd.Stdout, s.cmd.Stderr = &s.logs, &s.logs
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("versitygw exited:\n%s", s.Logs())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s:\n%s", addr, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns what the server printed so far.
func (s *Server) Logs() string { return s.logs.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
