package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"depot/servicedb"
)

// Alert kinds the writer and the verification raise.
const (
	// KindTampered: the trail no longer matches a signed checkpoint
	// (a record changed, removed or backdated, or the database rolled back).
	KindTampered = "audit_tampered"
	// KindWitnessDown: a witness refused or did not answer a checkpoint;
	// it is retried.
	KindWitnessDown = "witness_unavailable"
)

// Alert is what the writer reports to the operator. It carries sizes,
// times and codes only.
type Alert struct {
	Kind    string
	Message string
	Details map[string]string
}

// Config configures a Writer. DB, Signer and at least one witness are
// required.
type Config struct {
	DB        *servicedb.DB
	Key       *SigningKey
	Witnesses []Witness
	// Every is the number of new records after which a checkpoint is
	// written; default DefaultEvery.
	Every int64
	// Interval is the longest time a new record waits for a checkpoint;
	// default DefaultInterval.
	Interval time.Duration
	// RetryMin and RetryMax bound the delay between attempts to write a
	// checkpoint that a witness refused (doubling); defaults 1 s and 5 min.
	RetryMin, RetryMax time.Duration
	// Timeout bounds one write to one witness; default 30 s.
	Timeout time.Duration
	// Alert receives alerts; it must not block for long. nil drops them.
	Alert func(context.Context, Alert)
	Log   *slog.Logger
	Now   func() time.Time
}

// Defaults of Config.
const (
	DefaultEvery    = 1000
	DefaultInterval = time.Minute
)

// Writer signs checkpoints of the audit trail and writes them to its
// witnesses: after every Every records, at most Interval after a record
// is appended, on demand (Checkpoint) and when it is closed. It never
// blocks or fails an append: appends only wake it up. A witness that fails
// keeps the checkpoints it missed, which are retried with backoff; the
// first failure of an outage raises a KindWitnessDown alert.
type Writer struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex  // one checkpoint at a time
	prev *Checkpoint // the last checkpoint signed or found in a witness

	signedSize atomic.Int64 // size of the last checkpoint written
	lastSeq    atomic.Int64 // seq of the last append seen
	kick       chan struct{}

	pmu     sync.Mutex
	pending map[Witness][]Signed // checkpoints a witness has not taken yet
	down    map[Witness]bool     // witnesses in an alerted outage
	retryIn time.Duration

	alerted map[string]bool // tamper alerts already raised, by checkpoint name

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// New returns a Writer that writes only when asked (Checkpoint); Start
// also runs it in the background.
func New(cfg Config) (*Writer, error) {
	if cfg.DB == nil || cfg.Key == nil || len(cfg.Witnesses) == 0 {
		return nil, errors.New("checkpoint: a database, a signing key and a witness are required")
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, log: cfg.Log.With("component", "audit-checkpoint"), kick: make(chan struct{}, 1),
		pending: map[Witness][]Signed{}, down: map[Witness]bool{}, alerted: map[string]bool{}}, nil
}

// Start returns a Writer running in the background: it reads the latest
// checkpoint of each witness (to notice a database rolled back while
// services was down), counts appends through the database's append hook
// and writes checkpoints until Close.
func Start(ctx context.Context, cfg Config) (*Writer, error) {
	w, err := New(cfg)
	if err != nil {
		return nil, err
	}
	w.loadLatest(ctx)
	if head, err := cfg.DB.TreeHead(ctx); err == nil {
		w.lastSeq.Store(head.Size)
		if w.prev != nil && w.prev.Size == head.Size && w.prev.Root == head.Root {
			w.signedSize.Store(head.Size)
		}
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	cfg.DB.SetAppendHook(w.appended)
	go w.loop()
	return w, nil
}

// appended is the database's append hook: it must not block.
func (w *Writer) appended(seq int64) {
	w.lastSeq.Store(seq)
	if seq-w.signedSize.Load() >= w.cfg.Every {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	var retry <-chan time.Time // armed while a witness has checkpoints queued
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stop
		cancel()
	}()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
			w.write(ctx)
		case <-tick.C:
			if w.lastSeq.Load() > w.signedSize.Load() {
				w.write(ctx)
			}
		case <-retry:
			retry = nil
			w.flush(ctx)
		}
		if retry == nil {
			if d := w.retryDelay(); d > 0 {
				retry = time.After(d)
			}
		}
	}
}

// write writes a checkpoint from the background loop.
func (w *Writer) write(ctx context.Context) {
	if _, err := w.checkpoint(ctx, false); err != nil && ctx.Err() == nil {
		w.log.Warn("audit checkpoint not written to every witness", "err", err.Error())
	}
}

// Checkpoint signs the trail's current tree head and writes it to every
// witness now, even when nothing was appended since the last one. It
// returns the checkpoint, and an error when a witness did not take it (it
// stays queued for a retry while the Writer runs).
func (w *Writer) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return w.checkpoint(ctx, true)
}

// Close stops the background writer, then writes a last checkpoint (and
// every queued one) within ctx. Calling it again writes another. It does not remove the append hook's
// effect on appends still in flight: close the Writer after the services
// tier stopped appending.
func (w *Writer) Close(ctx context.Context) error {
	if w.stop != nil {
		w.stopOnce.Do(func() {
			w.cfg.DB.SetAppendHook(nil)
			close(w.stop)
		})
		<-w.done
	}
	_, err := w.checkpoint(ctx, true)
	return err
}

func (w *Writer) checkpoint(ctx context.Context, force bool) (Checkpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := w.cfg.DB.TreeHead(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: read the audit tree: %w", err)
	}
	if w.prev != nil {
		w.checkConsistent(ctx, head)
		if !force && w.prev.Size == head.Size && w.prev.Root == head.Root {
			return *w.prev, nil
		}
	}
	msg, c, err := Sign(Checkpoint{Size: head.Size, Root: head.Root, Head: head.HeadHash, Time: w.cfg.Now()}, w.cfg.Key)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: sign: %w", err)
	}
	w.prev = &c
	w.signedSize.Store(c.Size)
	s := Signed{Name: FileName(c), Note: msg, Check: c}
	var errs []error
	for _, wit := range w.cfg.Witnesses {
		w.pmu.Lock()
		w.pending[wit] = append(w.pending[wit], s)
		w.pmu.Unlock()
	}
	for _, wit := range w.cfg.Witnesses {
		if err := w.drain(ctx, wit); err != nil {
			errs = append(errs, err)
		}
	}
	w.log.Info("audit checkpoint", "size", c.Size, "witnesses", len(w.cfg.Witnesses), "failed", len(errs))
	return c, errors.Join(errs...)
}

// checkConsistent alerts once when head does not extend the previous
// checkpoint: fewer records, or a tree of which it is not a prefix.
func (w *Writer) checkConsistent(ctx context.Context, head servicedb.TreeHead) {
	p := *w.prev
	name := FileName(p)
	if w.alerted[name] {
		return
	}
	var problem string
	switch {
	case head.Size < p.Size:
		problem = fmt.Sprintf("the audit trail has %d records but the checkpoint of %s covered %d: records were removed or the database was restored from an older copy",
			head.Size, p.Time.UTC().Format(timeLayout), p.Size)
	case p.Size == 0:
	default:
		proof, err := w.cfg.DB.ProveTree(ctx, head.Size, p.Size)
		if err != nil {
			// Not a finding: the database could not be read (or we
			// are stopping). The next checkpoint checks again.
			w.log.Warn("audit checkpoint: cannot read a consistency proof", "err", err.Error())
			return
		}
		if err := tlog.CheckTree(proof, head.Size, head.Root, p.Size, p.Root); err != nil {
			problem = fmt.Sprintf("the audit trail no longer extends the checkpoint of %s (%d records): a witnessed record was changed or the database was restored from an older copy",
				p.Time.UTC().Format(timeLayout), p.Size)
		}
	}
	if problem == "" {
		return
	}
	w.alerted[name] = true
	w.log.Error("audit trail does not match its last checkpoint", "checkpoint_size", p.Size, "records", head.Size)
	w.alert(ctx, Alert{Kind: KindTampered, Message: problem, Details: map[string]string{
		"checkpoint_size": strconv.FormatInt(p.Size, 10), "checkpoint_time": p.Time.UTC().Format(timeLayout),
		"records": strconv.FormatInt(head.Size, 10)}})
}

// drain writes the checkpoints wit has not taken yet, oldest first, and
// alerts on the first failure of an outage.
func (w *Writer) drain(ctx context.Context, wit Witness) error {
	for {
		w.pmu.Lock()
		q := w.pending[wit]
		if len(q) == 0 {
			wasDown := w.down[wit]
			delete(w.down, wit)
			w.pmu.Unlock()
			if wasDown {
				w.log.Info("audit witness reachable again", "witness", wit.Kind())
			}
			return nil
		}
		s := q[0]
		w.pmu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		err := wit.Put(wctx, s.Name, s.Note)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err() // stopped: the checkpoint stays queued
		}
		if err != nil {
			w.pmu.Lock()
			first := !w.down[wit]
			w.down[wit] = true
			if len(w.pending[wit]) > maxPending { // keep the newest: each covers all before it
				w.pending[wit] = w.pending[wit][len(w.pending[wit])-maxPending:]
			}
			w.pmu.Unlock()
			w.log.Warn("audit witness did not take a checkpoint", "witness", wit.Kind(), "size", s.Check.Size, "err", err.Error())
			if first {
				w.alert(ctx, Alert{Kind: KindWitnessDown, Message: "an audit checkpoint witness did not take a checkpoint; retrying",
					Details: map[string]string{"witness": wit.Kind(), "checkpoint_size": strconv.FormatInt(s.Check.Size, 10)}})
			}
			return fmt.Errorf("witness %s: %w", wit.Kind(), err)
		}
		w.pmu.Lock()
		w.pending[wit] = w.pending[wit][1:]
		w.pmu.Unlock()
	}
}

// maxPending bounds the checkpoints kept for a witness that is down.
const maxPending = 1000

// flush retries every witness with queued checkpoints.
func (w *Writer) flush(ctx context.Context) {
	for _, wit := range w.cfg.Witnesses {
		_ = w.drain(ctx, wit)
	}
}

// retryDelay returns the next backoff delay while a checkpoint is queued,
// doubling from RetryMin to RetryMax, and 0 (resetting the backoff) when
// none is.
func (w *Writer) retryDelay() time.Duration {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	queued := false
	for _, q := range w.pending {
		queued = queued || len(q) > 0
	}
	if !queued {
		w.retryIn = 0
		return 0
	}
	if w.retryIn == 0 {
		w.retryIn = w.cfg.RetryMin
	} else {
		w.retryIn = min(2*w.retryIn, w.cfg.RetryMax)
	}
	return w.retryIn
}

// loadLatest reads the latest checkpoint of every witness that answers and
// keeps the largest that opens with the key, so that the first checkpoint
// after a start is checked against the last one before it.
func (w *Writer) loadLatest(ctx context.Context) {
	v := w.cfg.Key.Verifier
	for _, wit := range w.cfg.Witnesses {
		lctx, cancel := context.WithTimeout(ctx, min(w.cfg.Timeout, 10*time.Second)) // it delays the start
		b, err := latest(lctx, wit)
		cancel()
		if err != nil || b == nil {
			continue
		}
		if c, err := Open(b, v); err == nil && (w.prev == nil || c.Size > w.prev.Size) {
			w.prev = &c
		}
	}
}

func (w *Writer) alert(ctx context.Context, a Alert) {
	if w.cfg.Alert != nil {
		w.cfg.Alert(context.WithoutCancel(ctx), a)
	}
}
