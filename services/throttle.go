package services

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// throttle slows, then refuses, sign-in attempts from a client address that
// keeps failing to authenticate, and from its network (the /24 of an IPv4
// address, the /64 of an IPv6 one), so that an attacker gains nothing by
// spreading guesses over the addresses of one network. Failures are counted
// in windows of throttleWindow from the first; a success does not reset
// them (one good sign-in between guesses would otherwise buy four more).
// Past slowAfter failures of an address or its network each attempt waits
// throttleDelay; past blockAfter the address (or the whole network) is
// refused for throttleBlockFor. Memory is bounded: beyond maxEntries the
// entry whose last failure is oldest is forgotten, one at a time, so a
// flood of new addresses cannot lift the block of an address that keeps
// trying.
type throttle struct {
	mu         sync.Mutex
	now        func() time.Time
	maxEntries int
	entries    map[string]*list.Element // of *failures
	byAge      *list.List               // least recently failed first
}

// limits are the thresholds of one kind of entry.
type limits struct{ slowAfter, blockAfter int }

const (
	throttleWindow     = 5 * time.Minute
	throttleDelay      = 500 * time.Millisecond
	throttleBlockFor   = 5 * time.Minute
	throttleMaxEntries = 100000
)

var (
	addressLimits = limits{slowAfter: 5, blockAfter: 20}
	networkLimits = limits{slowAfter: 10, blockAfter: 50}
)

type failures struct {
	key          string
	lim          limits
	count        int
	first        time.Time
	blockedUntil time.Time
}

func newThrottle(now func() time.Time) *throttle { return newThrottleSized(now, throttleMaxEntries) }

// newThrottleSized is newThrottle remembering at most maxEntries entries.
func newThrottleSized(now func() time.Time, maxEntries int) *throttle {
	if now == nil {
		now = time.Now
	}
	if maxEntries <= 0 {
		maxEntries = throttleMaxEntries
	}
	return &throttle{now: now, maxEntries: maxEntries, entries: make(map[string]*list.Element), byAge: list.New()}
}

// keys returns the throttle keys of a client address: the address itself
// and, when it parses, its network.
func keys(addr string) [2]string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return [2]string{"addr " + addr, ""}
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return [2]string{"addr " + a.String(), "net " + p.String()}
}

// check returns how long to delay an attempt from addr, and whether addr
// or its network is blocked outright (then wait is how long the block
// lasts).
func (t *throttle) check(addr string) (wait time.Duration, blocked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys(addr) {
		f := t.current(k, now)
		if f == nil {
			continue
		}
		if now.Before(f.blockedUntil) {
			t.byAge.MoveToBack(t.entries[k]) // an attempt keeps a block from being evicted
			if d := f.blockedUntil.Sub(now); !blocked || d > wait {
				wait = d
			}
			blocked = true
			continue
		}
		if !blocked && f.count >= f.lim.slowAfter {
			wait = throttleDelay
		}
	}
	return wait, blocked
}

// current returns the live entry of key, forgetting one whose window and
// block have both passed.
func (t *throttle) current(key string, now time.Time) *failures {
	if key == "" {
		return nil
	}
	e := t.entries[key]
	if e == nil {
		return nil
	}
	f := e.Value.(*failures)
	if now.Sub(f.first) > throttleWindow && !now.Before(f.blockedUntil) {
		t.byAge.Remove(e)
		delete(t.entries, key)
		return nil
	}
	return f
}

// failure counts a failed sign-in from addr against the address and its
// network.
func (t *throttle) failure(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for i, k := range keys(addr) {
		if k == "" {
			continue
		}
		lim := addressLimits
		if i == 1 {
			lim = networkLimits
		}
		f := t.current(k, now)
		if f == nil {
			for len(t.entries) >= t.maxEntries {
				oldest := t.byAge.Front()
				t.byAge.Remove(oldest)
				delete(t.entries, oldest.Value.(*failures).key)
			}
			f = &failures{key: k, lim: lim, first: now}
			t.entries[k] = t.byAge.PushBack(f)
		} else {
			t.byAge.MoveToBack(t.entries[k])
		}
		if now.Sub(f.first) > throttleWindow { // blocked past its window: a new window
			f.first, f.count = now, 0
		}
		f.count++
		if f.count >= f.lim.blockAfter && !now.Before(f.blockedUntil) {
			f.blockedUntil = now.Add(throttleBlockFor)
		}
	}
}
