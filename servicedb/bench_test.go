package servicedb_test

import (
	"context"
	"testing"

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
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(engine+"-parallel", func(b *testing.B) {
			db := openDB(b, urls[engine](b))
			ctx := context.Background()
			ev := sampleEvent(1)
			b.SetParallelism(4) // 8 appenders on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Append(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
