package servicedb_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"depot/servicedb/servicedbtest"
)

// BenchmarkAppend measures one audit append (an upload.completed record
// with every field set), committed durably, on each engine:
//
//	go test -run x -bench Append -benchtime 200x ./servicedb/
//
// sqlite-nosync is SQLite without fsync (synchronous=OFF): it leaves the
// CPU and SQL work of an append (encoding, hashing, inserts, the Merkle
// bookkeeping) without the disk's noise, to measure changes to that work.
// parallel is eight appenders at once (group commit).
//
// Besides the wall time it reports the process's CPU time (user + system)
// and write system calls per append, which a busy shared machine disturbs
// far less than wall time.
func BenchmarkAppend(b *testing.B) {
	urls := map[string]func(testing.TB) string{
		servicedbtest.SQLite:   servicedbtest.SQLiteURL,
		servicedbtest.Postgres: servicedbtest.PostgresURL,
		"sqlite-nosync":        func(b testing.TB) string { return servicedbtest.SQLiteURL(b) + "?_pragma=synchronous(OFF)" },
	}
	for _, engine := range []string{servicedbtest.SQLite, servicedbtest.Postgres, "sqlite-nosync"} {
		b.Run(engine, func(b *testing.B) {
			db := openDB(b, urls[engine](b))
			ctx := context.Background()
			ev := sampleEvent(1)
			m := startMeter()
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
		})
		b.Run(engine+"-parallel", func(b *testing.B) {
			db := openDB(b, urls[engine](b))
			ctx := context.Background()
			ev := sampleEvent(1)
			b.SetParallelism(4) // 8 appenders on 2 cores
			m := startMeter()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Append(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			m.report(b)
		})
	}
}

// meter reads the process's CPU time and write system calls.
type meter struct {
	cpu    time.Duration
	writes int64
}

func startMeter() meter { return readMeter() }

func readMeter() meter {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	m := meter{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "syscw: "); ok {
				m.writes, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return m
}

// report adds cpu-ns/op and writes/op to b's results.
func (m meter) report(b *testing.B) {
	end := readMeter()
	n := float64(b.N)
	b.ReportMetric(float64(end.cpu-m.cpu)/n, "cpu-ns/op")
	b.ReportMetric(float64(end.writes-m.writes)/n, "writes/op")
}
