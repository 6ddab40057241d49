package services

import (
	"fmt"
	"testing"
	"time"
)

// clock is a fake clock for the throttle.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// guesses counts the failed sign-ins the throttle lets through from addr
// (neither delayed nor refused) before it refuses one, trying up to max.
func guesses(th *throttle, addr string, max int) (free, slowed int, blocked bool) {
	for range max {
		wait, refused := th.check(addr)
		if refused {
			return free, slowed, true
		}
		if wait > 0 {
			slowed++
		} else {
			free++
		}
		th.failure(addr)
	}
	return free, slowed, false
}

// TestThrottleNotResetBySuccess: four bad guesses and one good sign-in,
// over and over, from one address (the review got 160 guesses without a
// delay this way) are blocked after blockAfter failures all the same.
func TestThrottleNotResetBySuccess(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := newThrottle(c.now)
	bad := 0
	for round := 0; round < 40; round++ {
		for range 4 {
			if _, blocked := th.check("192.0.2.1"); blocked {
				if bad != addressLimits.blockAfter {
					t.Fatalf("blocked after %d failures, want %d", bad, addressLimits.blockAfter)
				}
				return
			}
			th.failure("192.0.2.1")
			bad++
		}
		// A successful sign-in from the same address: nothing is recorded.
		th.check("192.0.2.1")
		c.advance(time.Second)
	}
	t.Fatalf("%d failures interleaved with successes were never blocked", bad)
}

// TestThrottleCountsNetworks: guesses spread over the addresses of one /24
// (or one IPv6 /64) are counted together: ten addresses get blockAfter of
// the network in all (the review got 190 with no 429), a new address of
// that network is refused, another network is not.
func TestThrottleCountsNetworks(t *testing.T) {
	for _, tc := range []struct{ name, format, sibling, other string }{
		{"IPv4 /24", "203.0.113.%d", "203.0.113.200", "203.0.114.1"},
		{"IPv6 /64", "2001:db8:0:1::%x", "2001:db8:0:1:ffff::1", "2001:db8:0:2::1"},
		{"IPv4-mapped", "::ffff:203.0.113.%d", "203.0.113.201", "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1_800_000_000, 0)}
			th := newThrottle(c.now)
			total := 0
			for i := 1; i <= 10; i++ {
				free, slowed, _ := guesses(th, fmt.Sprintf(tc.format, i), addressLimits.blockAfter-1)
				total += free + slowed
			}
			if total != networkLimits.blockAfter {
				t.Errorf("ten addresses got %d guesses in all, want %d (the network's limit)", total, networkLimits.blockAfter)
			}
			if _, blocked := th.check(tc.sibling); !blocked {
				t.Errorf("a new address of the blocked network is not refused")
			}
			if wait, blocked := th.check(tc.other); blocked || wait != 0 {
				t.Errorf("another network is throttled: wait %v, blocked %v", wait, blocked)
			}
			c.advance(throttleBlockFor + time.Second)
			if _, blocked := th.check(tc.sibling); blocked {
				t.Errorf("the network is still refused after the block")
			}
		})
	}
}

// TestThrottleSlowsThenBlocks: an address is slowed after slowAfter
// failures and refused after blockAfter, for throttleBlockFor; an old
// window is forgotten.
func TestThrottleSlowsThenBlocks(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := newThrottle(c.now)
	free, slowed, blocked := guesses(th, "192.0.2.7", 100)
	if free != addressLimits.slowAfter || slowed != addressLimits.blockAfter-addressLimits.slowAfter || !blocked {
		t.Fatalf("free %d, slowed %d, blocked %v; want %d, %d, true", free, slowed, blocked,
			addressLimits.slowAfter, addressLimits.blockAfter-addressLimits.slowAfter)
	}
	if wait, _ := th.check("192.0.2.7"); wait != throttleBlockFor {
		t.Errorf("block lasts %v, want %v", wait, throttleBlockFor)
	}
	c.advance(throttleBlockFor + time.Second)
	if wait, blocked := th.check("192.0.2.7"); blocked || wait != 0 {
		t.Errorf("after the block and the window: wait %v, blocked %v", wait, blocked)
	}
	// A few failures, then a quiet window: forgotten.
	th.failure("192.0.2.8")
	c.advance(throttleWindow + time.Second)
	th.check("192.0.2.8")
	if _, ok := th.entries["addr 192.0.2.8"]; ok {
		t.Errorf("an entry whose window passed is kept")
	}
}

// TestThrottleEvictsOldestFirst: with the table full, the entry whose last
// failure is oldest goes, one at a time; the table is never wiped, so an
// address that keeps guessing stays blocked while a flood of new addresses
// arrives (the review lifted every block with 100,000 addresses).
func TestThrottleEvictsOldestFirst(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	const max = 64
	th := newThrottleSized(c.now, max)
	guesses(th, "192.0.2.1", 100) // blocked
	for i := range 1000 {
		c.advance(time.Millisecond)
		th.failure(fmt.Sprintf("10.%d.%d.1", i/256, i%256))
		if i%10 == 0 { // the attacker keeps trying, and is refused
			th.check("192.0.2.1")
		}
		if len(th.entries) > max {
			t.Fatalf("%d entries, bound %d", len(th.entries), max)
		}
	}
	if len(th.entries) != max {
		t.Errorf("%d entries after the flood, want the bound %d (evicted one at a time, never wiped)", len(th.entries), max)
	}
	if _, blocked := th.check("192.0.2.1"); !blocked {
		t.Errorf("the flood lifted the block of an address that keeps trying")
	}
	// The newest flood entries are there, the oldest are gone.
	if _, ok := th.entries["addr 10.3.231.1"]; !ok {
		t.Errorf("the newest entry was evicted")
	}
	if _, ok := th.entries["addr 10.0.0.1"]; ok {
		t.Errorf("the oldest entry was kept")
	}
}
