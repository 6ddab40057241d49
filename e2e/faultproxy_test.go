package e2e

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultKind is what a faultProxy does to one connection.
type faultKind int

const (
	faultNone      faultKind = iota
	faultReset               // forward up to the fault point, then RST both sides (SO_LINGER 0)
	faultClose               // forward up to the fault point, then close both sides (FIN)
	faultStall               // stop reading from the client at the fault point (so the server sees an idle body), reset after fault.stall
	faultSlow                // from the fault point, forward at fault.rate bytes/s for fault.slowFor bytes, then at full speed
	faultHalfClose           // at the fault point, CloseWrite towards the server and keep relaying its answer; the client's further bytes are dropped
	numFaultKinds
)

func (k faultKind) String() string {
	return [...]string{"none", "reset", "close", "stall", "slow", "half-close"}[k]
}

// fault is the plan of one proxied connection. It fires in the first read
// of client bytes that takes the connection past byte at (counted from the
// connection's first byte towards the server) and, when inBody > 0, lies at
// least inBody bytes after the last HTTP/1.1 request line (deep in a body).
// The cut falls strictly inside that read, so a request that fires a fault
// never reaches the server whole (and its answer is never lost after the
// server acted on it).
type fault struct {
	kind    faultKind
	at      int64
	inBody  int64
	stall   time.Duration
	rate    int64
	slowFor int64
	// downAt > 0 resets the connection (both sides) once downAt bytes of
	// the server's answers have been forwarded to the client: a download
	// cut on this hop. Independent of kind.
	downAt int64
}

// faultProxy is a TCP proxy for fault injection between two real
// processes. plan decides each accepted connection's fault (its offsets
// count from the connection's first byte); reqPlan, when set, decides anew
// at the start of every request of a connection that has no fault pending
// (its offsets count from that request line). The target can be
// changed while it runs (a tier restarted on a new port), and connections
// that already exist keep their old target. Global cut points (cutAtTotal)
// cut whatever connection carries that byte of the total client→server
// stream, alternately with a reset and a plain close.
type faultProxy struct {
	ln      net.Listener
	target  atomic.Pointer[string]
	plan    func(conn int64) fault
	reqPlan func() fault

	conns    atomic.Int64
	up       atomic.Int64 // client→server bytes forwarded, all connections
	downCuts atomic.Int64 // connections reset by fault.downAt
	fired    [numFaultKinds]atomic.Int64

	cutMu   sync.Mutex
	cuts    []int64 // ascending total-stream cut points still to come
	cutDone int

	mu   sync.Mutex
	open map[net.Conn]bool
	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once
}

// newFaultProxy starts a proxy to target; plan may be nil (no per-connection
// faults).
func newFaultProxy(t *testing.T, target string, plan func(conn int64) fault) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if plan == nil {
		plan = func(int64) fault { return fault{} }
	}
	p := &faultProxy{ln: ln, plan: plan, open: map[net.Conn]bool{}, stop: make(chan struct{})}
	p.setTarget(target)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// perRequest makes the proxy draw a fault from plan at every request.
func (p *faultProxy) perRequest(plan func() fault) *faultProxy {
	p.reqPlan = plan
	return p
}

// withCuts adds cut points on the total client→server stream.
func (p *faultProxy) withCuts(cuts []int64) *faultProxy {
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	p.cuts = append(p.cuts, cuts...)
	slicesSortInt64(p.cuts)
	return p
}

func slicesSortInt64(s []int64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (p *faultProxy) addr() string            { return p.ln.Addr().String() }
func (p *faultProxy) url() string             { return "http://" + p.addr() }
func (p *faultProxy) setTarget(a string)      { p.target.Store(&a) }
func (p *faultProxy) count(k faultKind) int64 { return p.fired[k].Load() }

// faults returns the number of faults fired, all kinds.
func (p *faultProxy) faults() int64 {
	var n int64
	for k := faultReset; k < numFaultKinds; k++ {
		n += p.fired[k].Load()
	}
	return n + int64(p.cutsMade())
}

func (p *faultProxy) cutsMade() int {
	p.cutMu.Lock()
	defer p.cutMu.Unlock()
	return p.cutDone
}

// stats is a one-line summary for logs.
func (p *faultProxy) stats() string {
	var b bytes.Buffer
	b.WriteString("conns=")
	b.WriteString(itoa(p.conns.Load()))
	for k := faultReset; k < numFaultKinds; k++ {
		b.WriteString(" " + k.String() + "=" + itoa(p.fired[k].Load()))
	}
	if n := p.cutsMade(); n > 0 {
		b.WriteString(" cuts=" + itoa(int64(n)))
	}
	b.WriteString(" up=" + itoa(p.up.Load()>>20) + "MiB")
	return b.String()
}

func itoa(n int64) string {
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// resetAll resets every open connection (e.g. after the target died).
func (p *faultProxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

func (p *faultProxy) close() {
	p.once.Do(func() {
		close(p.stop)
		p.ln.Close()
		p.resetAll()
		p.wg.Wait()
	})
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.open[c] = true
	} else {
		delete(p.open, c)
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		f := p.plan(p.conns.Add(1))
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(client.(*net.TCPConn), f)
		}()
	}
}

// reqLineMark ends every HTTP/1.1 request line; the bytes after the last one
// seen tell how deep into a request the stream is.
var reqLineMark = []byte(" HTTP/1.1\r\n")

func resetConn(cs ...*net.TCPConn) {
	for _, c := range cs {
		c.SetLinger(0)
		c.Close()
	}
}

func (p *faultProxy) handle(client *net.TCPConn, f fault) {
	up, err := net.DialTimeout("tcp", *p.target.Load(), 5*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	server := up.(*net.TCPConn)
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)
	done := make(chan struct{})
	downAt := f.downAt
	go func() { // server → client, untouched unless cut at downAt
		if downAt > 0 {
			if n, _ := io.CopyN(client, server, downAt); n == downAt {
				p.downCuts.Add(1)
				resetConn(client, server)
				close(done)
				return
			}
		}
		io.Copy(client, server)
		client.CloseWrite()
		close(done)
	}()
	finish := func() { // wait for the answer direction, bounded
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		case <-p.stop:
		}
		client.Close()
		server.Close()
		<-done
	}

	buf := make([]byte, 32<<10)
	var pos, lastReq int64
	var tail []byte
	slowLeft := int64(0)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			data := buf[:n]
			scan := append(tail, data...)
			if i := bytes.LastIndex(scan, reqLineMark); i >= 0 {
				lastReq = pos - int64(len(tail)) + int64(i)
				if p.reqPlan != nil && f.kind == faultNone {
					f = p.reqPlan()
					f.at += lastReq
				}
			}
			tail = append([]byte(nil), scan[max(0, len(scan)-len(reqLineMark)):]...)

			// A global cut point inside this read?
			p.cutMu.Lock()
			total := p.up.Load()
			cut, reset := int64(-1), false
			if len(p.cuts) > 0 && total+int64(n) >= p.cuts[0] {
				cut = max(0, p.cuts[0]-total)
				p.cuts = p.cuts[1:]
				p.cutDone++
				reset = p.cutDone%2 == 1
			}
			p.cutMu.Unlock()
			if cut >= 0 {
				server.Write(data[:cut])
				p.up.Add(cut)
				if reset {
					resetConn(client, server)
				} else {
					client.Close()
					server.Close()
				}
				<-done
				return
			}

			if f.kind != faultNone && pos+int64(n) > f.at && (f.inBody == 0 || pos+int64(n)-lastReq > f.inBody) {
				k := f.at - pos
				if k < 0 || k >= int64(n) {
					k = rand.Int64N(int64(n))
				}
				kind := f.kind
				f.kind = faultNone
				p.fired[kind].Add(1)
				if k > 0 {
					if _, werr := server.Write(data[:k]); werr != nil {
						break
					}
					p.up.Add(k)
				}
				pos += k
				data = data[k:]
				switch kind {
				case faultReset:
					resetConn(client, server)
					<-done
					return
				case faultClose:
					client.Close()
					server.Close()
					<-done
					return
				case faultStall:
					select {
					case <-done: // the server gave up and closed: so does a real proxy
					case <-time.After(f.stall):
					case <-p.stop:
					}
					resetConn(client, server)
					<-done
					return
				case faultHalfClose:
					server.CloseWrite()
					go io.Copy(io.Discard, client) // keep reading, drop
					finish()
					return
				case faultSlow:
					slowLeft = f.slowFor
				}
			}
			if slowLeft > 0 {
				// Dribble: small writes paced to the rate.
				const piece = 4 << 10
				for len(data) > 0 && slowLeft > 0 {
					m := min(int64(len(data)), piece, slowLeft)
					if _, werr := server.Write(data[:m]); werr != nil {
						break
					}
					p.up.Add(m)
					pos += m
					slowLeft -= m
					data = data[m:]
					time.Sleep(time.Duration(float64(m) / float64(f.rate) * float64(time.Second)))
				}
			}
			if len(data) > 0 {
				if _, werr := server.Write(data); werr != nil {
					break
				}
				p.up.Add(int64(len(data)))
				pos += int64(len(data))
			}
		}
		if err != nil {
			break
		}
	}
	server.CloseWrite()
	finish()
}

// throttledProxy is a proxy to target whose connections run at rate
// bytes/s until unthrottle is called; connections opened after that run at
// full speed.
func throttledProxy(t *testing.T, target string, rate int64) (p *faultProxy, unthrottle func()) {
	var slow atomic.Bool
	slow.Store(true)
	p = newFaultProxy(t, target, func(int64) fault {
		if slow.Load() {
			return fault{kind: faultSlow, rate: rate, slowFor: 1 << 40}
		}
		return fault{}
	})
	return p, func() { slow.Store(false) }
}

// faultMix describes random faults: each connection gets one with
// probability p, of a kind drawn by weight, at a byte offset drawn
// log-uniformly in [64 B, maxAt) so that small requests are hit as often as
// deep offsets of large bodies. Stalls and slow links cost wall time and are
// capped in number.
type faultMix struct {
	p                  float64
	weights            [numFaultKinds]float64
	maxAt              int64
	stall              time.Duration
	maxStalls, maxSlow int64
	rate               int64 // slow link bytes/s
	slowFor            time.Duration
}

// defaultMix is every fault kind, for bodies idle-timed-out after idle.
func defaultMix(p float64, idle time.Duration) faultMix {
	var w [numFaultKinds]float64
	w[faultReset], w[faultClose], w[faultStall], w[faultSlow], w[faultHalfClose] = 4, 1, 1.5, 1.5, 2
	return faultMix{p: p, weights: w, maxAt: 64 << 20, stall: idle + idle/2 + time.Second, maxStalls: 12, maxSlow: 12,
		rate: 512 << 10, slowFor: idle + idle/2}
}

// reqPlan returns m's plan for use per request.
func (m faultMix) reqPlan(seed uint64) func() fault {
	f := m.plan(seed)
	return func() fault { return f(0) }
}

// plan returns a per-connection plan function drawing from m with a seeded
// generator (safe for concurrent use).
func (m faultMix) plan(seed uint64) func(int64) fault {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 99))
	var stalls, slows int64
	var total float64
	for _, w := range m.weights {
		total += w
	}
	return func(int64) fault {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() >= m.p {
			return fault{}
		}
		x := rng.Float64() * total
		kind := faultReset
		for k := faultReset; k < numFaultKinds; k++ {
			if x < m.weights[k] {
				kind = k
				break
			}
			x -= m.weights[k]
		}
		switch {
		case kind == faultStall && stalls >= m.maxStalls, kind == faultSlow && slows >= m.maxSlow:
			kind = faultReset
		case kind == faultStall:
			stalls++
		case kind == faultSlow:
			slows++
		}
		at := int64(math.Exp(math.Log(64) + rng.Float64()*(math.Log(float64(m.maxAt))-math.Log(64))))
		return fault{kind: kind, at: at, stall: m.stall, rate: m.rate, slowFor: int64(float64(m.rate) * m.slowFor.Seconds())}
	}
}
