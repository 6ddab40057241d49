package maintenance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"depot/servicedb"
)

// StorageSpace is the capacity of the storage when the report was made:
// the free and total bytes of the volume of file:// storage. Measured is
// false where the backend has no capacity to report (S3).
type StorageSpace struct {
	Measured bool  `json:"measured"`
	Free     int64 `json:"free_bytes,omitempty"`
	Total    int64 `json:"total_bytes,omitempty"`
}

// CleanupStatus is what the last cleanup run that really ran (not a dry
// run) found: the orphans and leftovers of the storage.
type CleanupStatus struct {
	Run      int64     `json:"run"`
	Finished time.Time `json:"finished"`
	Outcome  string    `json:"outcome"`
	// Objects nothing referred to (removed), kept versions whose object
	// was missing (reported and alerted), crash leftovers removed, upload
	// sessions expired.
	OrphanObjects  int `json:"orphan_objects"`
	OrphanRecords  int `json:"orphan_records"`
	StraysRemoved  int `json:"strays_removed"`
	UploadsExpired int `json:"uploads_expired"`
}

// addOperations fills the figures of rep that are about the storage as a
// whole rather than per cohort: its free capacity and the orphans found
// by the last cleanup.
func (m *Maintainer) addOperations(ctx context.Context, rep *Report) error {
	sp, ok, err := m.cfg.Store.Space(ctx)
	if err != nil {
		return err
	}
	rep.Space = StorageSpace{Measured: ok, Free: sp.Free, Total: sp.Total}
	runs, err := m.cfg.DB.JobRuns(ctx, JobCleanup, 50)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Finished == nil || strings.HasSuffix(r.Trigger, dryRunSuffix) || r.Outcome == servicedb.RunRunning {
			continue
		}
		var res CleanupResult
		_ = json.Unmarshal([]byte(r.Summary), &res)
		rep.LastCleanup = &CleanupStatus{Run: r.ID, Finished: *r.Finished, Outcome: r.Outcome,
			OrphanObjects: res.OrphanObjects, OrphanRecords: res.OrphanRecords, StraysRemoved: res.StraysRemoved,
			UploadsExpired: res.UploadsExpired}
		break
	}
	return nil
}

// spaceLine describes the storage's capacity in words.
func spaceLine(s StorageSpace) string {
	if !s.Measured {
		return "storage capacity: not measurable (S3: see the provider's console or quotas)"
	}
	pct := 0.0
	if s.Total > 0 {
		pct = 100 * float64(s.Free) / float64(s.Total)
	}
	return fmt.Sprintf("storage capacity: %s free of %s (%.1f %%)", humanBytes(s.Free), humanBytes(s.Total), pct)
}

// cleanupLine describes the orphans of the last cleanup in words.
func cleanupLine(c *CleanupStatus) string {
	if c == nil {
		return "last cleanup: none recorded"
	}
	return fmt.Sprintf("last cleanup: run %d, %s, %s: %d objects without a version removed, %d versions without their object, "+
		"%d crash leftovers removed, %d uploads expired", c.Run, c.Finished.UTC().Format(time.RFC3339), c.Outcome,
		c.OrphanObjects, c.OrphanRecords, c.StraysRemoved, c.UploadsExpired)
}

// renderOperations writes the storage-wide lines of the text report.
func renderOperations(w io.Writer, rep Report) {
	fmt.Fprintln(w, spaceLine(rep.Space))
	fmt.Fprintf(w, "open uploads: %d holding %s\n", rep.Total.OpenUploads, humanBytes(rep.Total.OpenUploadBytes))
	fmt.Fprintln(w, cleanupLine(rep.LastCleanup))
}
