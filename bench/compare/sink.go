package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sinkEnv, when set to a directory, turns this program into the minimal Go
// sink server behind nginx: it streams each PUT/POST body to a file in that
// directory with a 1 MiB buffer, fsyncs, renames it into place and answers
// 201. No database; no hashing unless sinkHashEnv is set too, and then the
// sink computes each body's SHA-256 as it copies it (the plain
// io.MultiWriter a service that must name files by their hash would use)
// and answers it in a Sha256 header.
const (
	sinkEnv     = "BENCH_COMPARE_SINK_DIR"
	sinkHashEnv = "BENCH_COMPARE_SINK_SHA256"
)

func sinkMain(dir string, hashing bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	fmt.Println("listening", l.Addr())
	pool := sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	var seq atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		name := filepath.Join(dir, fmt.Sprintf("f%d", seq.Add(1)))
		f, err := os.Create(name + ".tmp")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		buf := pool.Get().(*[]byte)
		// struct{ io.Writer } hides *os.File's ReadFrom, which would fall back
		// to a 32 KiB copy and ignore the buffer.
		var dst io.Writer = struct{ io.Writer }{f}
		var h hash.Hash
		if hashing {
			h = sha256.New()
			dst = io.MultiWriter(f, h)
		}
		_, err = io.CopyBuffer(dst, r.Body, *buf)
		pool.Put(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(name+".tmp", name)
		}
		if err != nil {
			os.Remove(name + ".tmp")
			http.Error(w, err.Error(), 500)
			return
		}
		if hashing {
			w.Header().Set("Sha256", hex.EncodeToString(h.Sum(nil)))
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	_ = srv.Serve(l)
}

// startSink starts the sink as a separate process (this same binary), so its
// CPU and RSS are measured apart from the client's; hashing makes it compute
// each body's SHA-256.
func startSink(dir string, hashing bool) (*exec.Cmd, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), sinkEnv+"="+dir)
	if hashing {
		cmd.Env = append(cmd.Env, sinkHashEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, "", fmt.Errorf("sink did not start: %w", err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "listening ")), nil
}
