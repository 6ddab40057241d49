package cli

import (
	"context"
	"net/url"
	"path/filepath"

	"depot"
	"depot/servicedb"
	"depot/services"
	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
	"depot/storage/s3store"
)

// openStore opens the storage named by a DEPOT_STORAGE_URL.
func openStore(ctx context.Context, raw string, opts storage.Options) (*storage.Store, error) {
	if raw == "" {
		return nil, usageErr("refusing to start: the services role needs DEPOT_STORAGE_URL (file:///absolute/path)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, usageErr("DEPOT_STORAGE_URL is not a URL")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, usageErr("DEPOT_STORAGE_URL must be file:///absolute/path")
		}
		var lopts localstore.Options
		for name, vals := range u.Query() {
			switch {
			case name == "io" && len(vals) == 1 && (vals[0] == "direct" || vals[0] == "buffered"):
				lopts.BufferedIO = vals[0] == "buffered"
			default:
				return nil, usageErr("DEPOT_STORAGE_URL: unknown option %q for file:// (io=direct or io=buffered)", name)
			}
		}
		d, err := localstore.Open(u.Path, lopts)
		if err != nil {
			return nil, usageErr("cannot open storage: %v", err)
		}
		return storage.New(d, opts), nil
	case "mem":
		return storage.New(memstore.New(), opts), nil
	case "s3": // s3://bucket/prefix?endpoint=...&region=..., credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
		d, err := s3store.New(ctx, raw)
		if err != nil {
			return nil, usageErr("cannot open storage: %v", err)
		}
		return storage.New(d, opts), nil
	}
	return nil, usageErr("DEPOT_STORAGE_URL: unsupported scheme %q (use file:// or s3://)", u.Scheme)
}

// localStoragePath returns the directory of a file:// DEPOT_STORAGE_URL, or
// "" for any other (or an invalid) URL.
func localStoragePath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" || u.Host != "" || !filepath.IsAbs(u.Path) {
		return ""
	}
	return u.Path
}

// openDatabase opens and migrates the database named by DEPOT_DATABASE_URL.
func openDatabase(ctx context.Context, raw string) (*servicedb.DB, error) {
	if raw == "" {
		return nil, usageErr("refusing to start: the services role needs DEPOT_DATABASE_URL (sqlite:///path or postgres://...)")
	}
	db, err := servicedb.Open(ctx, raw)
	if err != nil {
		return nil, usageErr("cannot open the database: %v", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, usageErr("cannot migrate the database: %v", err)
	}
	return db, nil
}

// servicesDB adapts *servicedb.DB to services.Database.
type servicesDB struct{ *servicedb.DB }

func (d servicesDB) AppendWithFile(ctx context.Context, ev depot.AuditEvent, f services.FileState) (depot.AuditEvent, error) {
	return d.DB.AppendWithFile(ctx, ev, servicedb.FileRecord{
		Key: f.Object.Key, Cohort: f.Cohort, Size: f.Object.Size, SHA256: f.Object.SHA256,
		Class: f.Object.Class, CleanupScheduledFor: f.CleanupScheduledFor,
		Created: f.Object.ModTime, Updated: f.Object.ModTime, UploadedBy: f.UploadedBy,
	})
}

func (d servicesDB) ForgetFile(ctx context.Context, key string) error {
	return d.DeleteFile(ctx, key)
}
