package auditdb_test

import (
	"context"
	"testing"

	"depot/auditdb/auditdbtest"
)

// BenchmarkAppend measures one audit append (an upload.completed record
// with every field set), committed durably, on each engine:
//
//	go test -run x -bench Append -benchtime 200x ./auditdb/
func BenchmarkAppend(b *testing.B) {
	for _, engine := range []string{auditdbtest.SQLite, auditdbtest.Postgres} {
		b.Run(engine, func(b *testing.B) {
			url := auditdbtest.SQLiteURL(b)
			if engine == auditdbtest.Postgres {
				url = auditdbtest.PostgresURL(b)
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
