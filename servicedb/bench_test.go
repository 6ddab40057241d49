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
func BenchmarkAppend(b *testing.B) {
	for _, engine := range []string{servicedbtest.SQLite, servicedbtest.Postgres} {
		b.Run(engine, func(b *testing.B) {
			url := servicedbtest.SQLiteURL(b)
			if engine == servicedbtest.Postgres {
				url = servicedbtest.PostgresURL(b)
			}
			db := openDB(b, url)
			ctx := context.Background()
			ev := sampleEvent(1)
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
