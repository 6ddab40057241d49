package maintenance_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"depot"
	"depot/maintenance"
	"depot/servicedb/servicedbtest"
)

// BenchmarkVerify measures integrity verification throughput over local
// storage and SQLite: DEPOT_BENCH_VERIFY_MB (default 256) of data in 64 MiB
// files, rate unlimited. Run with
//
//	go test -run '^$' -bench Verify -benchtime 3x ./maintenance/
func BenchmarkVerify(b *testing.B) {
	total := int64(256)
	if v, err := strconv.ParseInt(os.Getenv("DEPOT_BENCH_VERIFY_MB"), 10, 64); err == nil && v > 0 {
		total = v
	}
	e := servicedbtest.EngineURL{Engine: servicedbtest.SQLite, URL: servicedbtest.SQLiteURL(b)}
	f := newFixture(b, e, nil, nil)
	const fileMB = 64
	for i := int64(0); i*fileMB < total; i++ {
		data := make([]byte, min(fileMB, total-i*fileMB)<<20)
		if _, err := io.ReadFull(rand.Reader, data); err != nil {
			b.Fatal(err)
		}
		f.put(fmt.Sprintf("c1/file-%03d.bin", i), data, depot.Permanent, 0)
	}
	b.ResetTimer()
	var mbps float64
	for i := 0; i < b.N; i++ {
		res, err := f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || res.Failed != 0 {
			b.Fatal(res, err)
		}
		b.SetBytes(res.Bytes)
		mbps = res.MBPerSecond
	}
	b.ReportMetric(mbps, "MB/s(last)")
}
