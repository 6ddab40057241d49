package checkpoint_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"depot"
	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// writerFixture is a database, a key, an HTTP witness and the alerts a
// writer raised.
type writerFixture struct {
	db      *servicedb.DB
	key     *checkpoint.SigningKey
	srv     *checkpointtest.WitnessServer
	witness checkpoint.Witness
	alerts  chan checkpoint.Alert
}

func newWriterFixture(t *testing.T, url string) *writerFixture {
	t.Helper()
	f := &writerFixture{db: openDB(t, url), srv: checkpointtest.NewWitnessServer(), alerts: make(chan checkpoint.Alert, 100)}
	f.key, _ = newKey(t, "depot-audit")
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	var err error
	if f.witness, err = checkpoint.NewHTTP(ts.URL); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *writerFixture) config(every int64, interval time.Duration, ws ...checkpoint.Witness) checkpoint.Config {
	if len(ws) == 0 {
		ws = []checkpoint.Witness{f.witness}
	}
	return checkpoint.Config{DB: f.db, Key: f.key, Witnesses: ws, Every: every, Interval: interval,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Alert: func(_ context.Context, a checkpoint.Alert) { f.alerts <- a }}
}

func (f *writerFixture) start(t *testing.T, cfg checkpoint.Config) *checkpoint.Writer {
	t.Helper()
	w, err := checkpoint.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func (f *writerFixture) append(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := f.db.Append(context.Background(), depot.AuditEvent{Action: depot.ActionList, Outcome: depot.OutcomeSuccess, Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitSize waits until the witness took a checkpoint of at least size
// records and returns it, after checking it against the database's tree.
func (f *writerFixture) waitSize(t *testing.T, size int64) checkpoint.Checkpoint {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		notes := f.srv.Notes()
		if len(notes) > 0 {
			c, err := checkpoint.Open([]byte(notes[len(notes)-1]), f.key.Verifier)
			if err != nil {
				t.Fatal(err)
			}
			if c.Size >= size {
				root, err := f.db.TreeHash(context.Background(), c.Size)
				if err != nil || root != c.Root {
					t.Fatalf("checkpoint of %d: root %s, tree %s %v", c.Size, c.Root, root, err)
				}
				return c
			}
		}
		select {
		case <-f.srv.Got:
		case <-deadline:
			var sizes []int64
			for _, n := range notes {
				c, _ := checkpoint.Open([]byte(n), f.key.Verifier)
				sizes = append(sizes, c.Size)
			}
			h, _, _ := f.db.Head(context.Background())
			t.Fatalf("no checkpoint of %d records; witness has %v; head %d", size, sizes, h)
		}
	}
}

func TestWriterEveryRecords(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newWriterFixture(t, e.URL)
		w := f.start(t, f.config(5, time.Hour))
		f.append(t, 23)
		// Fewer than 5 records are left without a checkpoint.
		f.waitSize(t, 23-4)
		if n := len(f.srv.Notes()); n < 3 {
			t.Fatalf("%d checkpoints for 23 records, one every 5", n)
		}
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := f.waitSize(t, 23); c.Size != 23 {
			t.Fatalf("checkpoint at close covers %d records, want 23", c.Size)
		}
		if len(f.alerts) != 0 {
			t.Fatalf("alert %+v", <-f.alerts)
		}
	})
}

func TestWriterInterval(t *testing.T) {
	t.Parallel()
	f := newWriterFixture(t, servicedbtest.SQLiteURL(t))
	f.start(t, f.config(1_000_000, 20*time.Millisecond))
	f.append(t, 3)
	if c := f.waitSize(t, 3); c.Size != 3 {
		t.Fatalf("size %d", c.Size)
	}
}

func TestWriterOnDemand(t *testing.T) {
	t.Parallel()
	f := newWriterFixture(t, servicedbtest.SQLiteURL(t))
	w, err := checkpoint.New(f.config(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(0); want < 3; want++ {
		c, err := w.Checkpoint(context.Background())
		if err != nil || c.Size != want {
			t.Fatalf("Checkpoint = %d, %v; want %d", c.Size, err, want)
		}
		f.append(t, 1)
	}
	if n := len(f.srv.Notes()); n != 3 {
		t.Fatalf("witness took %d checkpoints, want 3", n)
	}
}

// blockingWitness holds every Put until released.
type blockingWitness struct {
	checkpoint.Witness
	entered chan struct{}
	release chan struct{}
}

func (b *blockingWitness) Put(ctx context.Context, name string, note []byte) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.Witness.Put(ctx, name, note)
}

// Appends never wait for a witness: with a write to the witness stuck,
// records keep being appended at once.
func TestWriterNeverBlocksAppends(t *testing.T) {
	t.Parallel()
	f := newWriterFixture(t, servicedbtest.SQLiteURL(t))
	bw := &blockingWitness{Witness: f.witness, entered: make(chan struct{}, 1), release: make(chan struct{})}
	f.start(t, f.config(1, time.Hour, bw))
	f.append(t, 1)
	<-bw.entered // the writer is stuck in the witness
	f.append(t, 50)
	close(bw.release)
	f.waitSize(t, 51)
}

// A witness that is down: one alert, appends go on, and the checkpoints
// it missed reach it once it is back.
func TestWriterWitnessDown(t *testing.T) {
	t.Parallel()
	f := newWriterFixture(t, servicedbtest.SQLiteURL(t))
	f.srv.SetDown(true)
	f.start(t, f.config(2, time.Hour))
	f.append(t, 6)
	a := <-f.alerts
	if a.Kind != checkpoint.KindWitnessDown || a.Details["witness"] != "webhook" {
		t.Fatalf("alert %+v", a)
	}
	f.append(t, 4)
	f.srv.SetDown(false)
	f.waitSize(t, 10-1) // at most Every-1 records wait for the next one
	if first, _ := checkpoint.Open([]byte(f.srv.Notes()[0]), f.key.Verifier); first.Size > 6 {
		t.Fatalf("the first checkpoint the witness got covers %d records: the ones it missed were not kept", first.Size)
	}
	select {
	case a := <-f.alerts:
		t.Fatalf("second alert during one outage: %+v", a)
	default:
	}
}

// A writer that starts on a database behind its witness (restored from an
// older copy, or cut) alerts at its first checkpoint.
func TestWriterNoticesRollback(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newWriterFixture(t, e.URL)
		w := f.start(t, f.config(1000, time.Hour))
		f.append(t, 4)
		restore := checkpointtest.Snapshot(t, f.db)
		f.append(t, 6)
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		restore() // back to 4 records; the witness has seen 10
		f.append(t, 8)
		w2 := f.start(t, f.config(1000, time.Hour))
		if _, err := w2.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		a := <-f.alerts
		if a.Kind != checkpoint.KindTampered || a.Details["checkpoint_size"] != "10" {
			t.Fatalf("alert %+v", a)
		}
		t.Log(a.Message)
	})
}
