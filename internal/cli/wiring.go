package cli

import (
	"context"
	"net/url"
	"path/filepath"

	"depot/internal/config"
	"depot/servicedb"
	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
	"depot/storage/s3store"
)

// openDriver opens the storage named by a DEPOT_STORAGE_URL.
func openDriver(ctx context.Context, raw string) (storage.Driver, error) {
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
		return d, nil
	case "mem":
		return memstore.New(), nil
	case "s3": // s3://bucket/prefix?endpoint=...&region=..., credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
		d, err := s3store.New(ctx, raw)
		if err != nil {
			return nil, usageErr("cannot open storage: %v", err)
		}
		return d, nil
	}
	return nil, usageErr("DEPOT_STORAGE_URL: unsupported scheme %q (use file:// or s3://)", u.Scheme)
}

// openStore opens the storage named by raw, with its upload sessions kept
// in db. Its deletes of objects wait while a backup lease is in force
// (servicedb.DB.BackupRunning; see backup/).
func openStore(ctx context.Context, s settings, db *servicedb.DB, opts storage.Options) (*storage.Store, error) {
	d, err := openDriver(ctx, s.get(config.StorageURL))
	if err != nil {
		return nil, err
	}
	if d, err = sealDriver(ctx, s, d); err != nil {
		return nil, err
	}
	if opts.DeferDelete == nil {
		opts.DeferDelete = db.BackupRunning
	}
	return storage.New(d, db, opts), nil
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
