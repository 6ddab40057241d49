package services

import (
	"sync"
	"time"
)

// throttle slows, then refuses, an address that keeps failing to
// authenticate. After slowAfter failures inside window each attempt waits
// delay; after blockAfter failures the address is refused for blockFor.
type throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	state map[string]*failures
}

const (
	throttleWindow     = 5 * time.Minute
	throttleSlowAfter  = 5
	throttleBlockAfter = 20
	throttleDelay      = 500 * time.Millisecond
	throttleBlockFor   = 5 * time.Minute
	throttleMaxEntries = 100000
)

type failures struct {
	count        int
	first        time.Time
	blockedUntil time.Time
}

func newThrottle(now func() time.Time) *throttle {
	if now == nil {
		now = time.Now
	}
	return &throttle{now: now, state: make(map[string]*failures)}
}

// check returns how long to delay an attempt from addr, and whether addr is
// blocked outright (then wait is how long the block lasts).
func (t *throttle) check(addr string) (wait time.Duration, blocked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.state[addr]
	if f == nil {
		return 0, false
	}
	now := t.now()
	if now.Before(f.blockedUntil) {
		return f.blockedUntil.Sub(now), true
	}
	if now.Sub(f.first) > throttleWindow {
		delete(t.state, addr)
		return 0, false
	}
	if f.count >= throttleSlowAfter {
		return throttleDelay, false
	}
	return 0, false
}

func (t *throttle) failure(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.state[addr]
	if f == nil || now.Sub(f.first) > throttleWindow {
		if len(t.state) >= throttleMaxEntries {
			t.state = make(map[string]*failures) // bounded memory under a flood
		}
		f = &failures{first: now}
		t.state[addr] = f
	}
	f.count++
	if f.count >= throttleBlockAfter {
		f.blockedUntil = now.Add(throttleBlockFor)
	}
}

func (t *throttle) success(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.state[addr]; f != nil && !t.now().Before(f.blockedUntil) {
		delete(t.state, addr)
	}
}
