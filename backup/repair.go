package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/servicedb"
	"depot/storage"
)

// Outcomes of a files-only restore, per version (RepairItem.Outcome).
const (
	// RepairRestored: the object was damaged or missing and the backup's
	// copy, checked against the version, was written back under its ID.
	RepairRestored = "restored"
	// RepairNotInBackup: damaged or missing, and the backup has no copy
	// of this version (it is newer than the backup, or the backup was
	// made without --files or found it damaged too).
	RepairNotInBackup = "not_in_backup"
	// RepairBackupDamaged: the backup's copy does not match the version.
	RepairBackupDamaged = "backup_damaged"
	// RepairGone: a version of a selected path is in the backup but the
	// live system no longer keeps it (purged): a files-only restore never
	// adds a version; the bytes stay in the backup (files/<version>).
	RepairGone = "gone"
)

// RepairItem is what a files-only restore did about one version.
type RepairItem struct {
	Version string `json:"version"`
	Key     string `json:"key"`
	Damage  string `json:"damage,omitempty"` // what was wrong: missing, size_mismatch, hash_mismatch, read_error
	Outcome string `json:"outcome"`
}

// RepairResult summarises a files-only restore.
type RepairResult struct {
	Checked  int          `json:"checked"` // live versions whose object was read and hashed
	Intact   int          `json:"intact"`
	Restored int          `json:"restored"`
	Failed   int          `json:"failed"` // damaged and not repaired
	Items    []RepairItem `json:"items"`  // every version not intact, and every selected path gone
}

// RepairOptions configure Repair.
type RepairOptions struct {
	DB       *servicedb.DB
	Store    *storage.Store
	Target   Target
	Manifest Manifest
	// Paths selects what is checked: a key ("c1/a.csv") selects that path,
	// and every key below it as a folder ("c1/2026" selects
	// "c1/2026/x.csv"). None selects everything.
	Paths []string
	// Audit records one repair (nil: Repair records nothing).
	Audit func(ctx context.Context, ev depot.AuditEvent) error
}

// Repair is a files-only restore into a live system: it reads the object
// of every selected kept version of the live database — as depot verify
// does, bytes and SHA-256, not a stored attribute — and writes the
// backup's copy of each one that is missing or damaged back under the
// same version ID, after checking it against the live version's size and
// SHA-256. It never changes the database: it never adds, removes or
// re-points a version. Each object written is audited as restore.files;
// each damaged object that could not be repaired as restore.files with
// outcome failure.
func Repair(ctx context.Context, o RepairOptions) (RepairResult, error) {
	var res RepairResult
	inBackup := make(map[string]Entry, len(o.Manifest.Files))
	for _, e := range o.Manifest.Files {
		inBackup[e.Version] = e
	}
	live := map[string]bool{} // selected kept versions of the live system
	after := ""
	for {
		vs, err := o.DB.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 500})
		if err != nil {
			return res, err
		}
		for _, v := range vs {
			after = v.ID
			if !selected(v.Key, o.Paths) {
				continue
			}
			live[v.ID] = true
			if err := repairOne(ctx, o, v, inBackup, &res); err != nil {
				return res, err
			}
		}
		if len(vs) < 500 {
			break
		}
	}
	if len(o.Paths) > 0 {
		for _, e := range o.Manifest.Files {
			if selected(e.Key, o.Paths) && !live[e.Version] {
				res.Items = append(res.Items, RepairItem{Version: e.Version, Key: e.Key, Outcome: RepairGone})
			}
		}
	}
	return res, nil
}

func repairOne(ctx context.Context, o RepairOptions, v servicedb.Version, inBackup map[string]Entry, res *RepairResult) error {
	res.Checked++
	damage, err := inspect(ctx, o.Store, v)
	if err != nil {
		return err
	}
	if damage == "" {
		res.Intact++
		return nil
	}
	item := RepairItem{Version: v.ID, Key: v.Key, Damage: damage}
	e, ok := inBackup[v.ID]
	switch {
	case !ok || e.Damaged != "" || !o.Manifest.WithFiles:
		item.Outcome = RepairNotInBackup
	case e.Size != v.Size || e.SHA256 != v.SHA256:
		item.Outcome = RepairBackupDamaged // an ID is one version: this backup is not of this system
	default:
		err := restoreObject(ctx, o.Target, e, o.Store)
		switch {
		case depot.ErrorCode(err) == depot.CodeHashMismatch:
			item.Outcome = RepairBackupDamaged
		case err != nil:
			return err
		default:
			item.Outcome = RepairRestored
		}
	}
	res.Items = append(res.Items, item)
	ev := depot.AuditEvent{
		Action: depot.ActionRestoreFiles, Outcome: depot.OutcomeSuccess, Cohort: v.Cohort, Key: v.Key,
		StoredSize: v.Size, SHA256: v.SHA256, FileClass: v.Class, CleanupScheduledFor: v.CleanupScheduledFor,
		Metadata: map[string]string{
			"version": v.ID, "damage": damage, "backup_created": o.Manifest.Created.UTC().Format(time.RFC3339),
			"backup_audit_head_seq": strconv.FormatInt(o.Manifest.AuditHeadSeq, 10),
		},
	}
	if item.Outcome == RepairRestored {
		res.Restored++
	} else {
		res.Failed++
		ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, item.Outcome
	}
	if o.Audit != nil {
		return o.Audit(ctx, ev)
	}
	return nil
}

// inspect reads the live object of v and says what is wrong with it, as
// depot verify would: "" when it is intact.
func inspect(ctx context.Context, store *storage.Store, v servicedb.Version) (string, error) {
	rc, err := store.Open(ctx, v.ID, 0, -1)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return "missing", nil
	}
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, rc}, make([]byte, 1<<20))
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return "read_error", nil
	case n != v.Size:
		return "size_mismatch", nil
	case hex.EncodeToString(h.Sum(nil)) != v.SHA256:
		return "hash_mismatch", nil
	}
	return "", nil
}

// selected reports whether key is chosen by paths (none: all).
func selected(key string, paths []string) bool {
	if len(paths) == 0 {
		return true
	}
	for _, p := range paths {
		p = strings.TrimSuffix(p, "/")
		if key == p || strings.HasPrefix(key, p+"/") {
			return true
		}
	}
	return false
}
