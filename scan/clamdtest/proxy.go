package clamdtest

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// HoldProxy listens on a Unix socket of its own and forwards every
// connection to clamd, but holds back clamd's answers until Release: a
// clamd as slow as a test wants, without timing. Requests pass at once.
type HoldProxy struct {
	Socket string
	ln     net.Listener
	gate   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// Hold starts a HoldProxy in front of d for t; it is released and closed
// when t ends.
func (d *Daemon) Hold(t testing.TB) *HoldProxy {
	t.Helper()
	p := &HoldProxy{Socket: filepath.Join(d.Dir, "slow.sock"), gate: make(chan struct{})}
	ln, err := net.Listen("unix", p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", d.Socket)
			if err != nil {
				in.Close()
				continue
			}
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() {
				defer p.wg.Done()
				<-p.gate
				_, _ = io.Copy(in, out)
				in.Close()
			}()
		}
	}()
	t.Cleanup(func() { p.Release(); ln.Close(); p.wg.Wait() })
	return p
}

// Addr returns the proxy's address as DEPOT_CLAMD_ADDR takes it.
func (p *HoldProxy) Addr() string { return "unix:" + p.Socket }

// Release lets every held answer through, now and from now on.
func (p *HoldProxy) Release() { p.once.Do(func() { close(p.gate) }) }
