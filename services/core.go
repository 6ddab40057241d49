// Package services is the services tier. Its Core does every operation on
// files for a caller: authentication, authorisation, storage and audit,
// with no knowledge of HTTP; the internal API (http*.go) decodes requests
// into calls of the Core and encodes the answers.
//
// How a file version comes to be (see docs/architecture.md): the bytes are
// written to a staging area and made durable (storage.Store), published as
// an object named by the version's ID, and only then recorded, in one
// database transaction with its audit record (servicedb.CommitVersion). A
// crash before that transaction leaves an object that nothing references,
// which cleanup removes; after it, the version is complete. Deletes are
// markers; bytes are removed only after a transaction stopped referring to
// them (purge, retention, temporary files due).
package services

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"depot"
	"depot/metrics"
	"depot/scan"
	"depot/servicedb"
	"depot/storage"
)

// Config configures a Core.
type Config struct {
	Store *storage.Store
	DB    *servicedb.DB
	Log   *slog.Logger
	// TempTTL is how long a temporary version lives before cleanup is due.
	// Default 7 days.
	TempTTL time.Duration
	// MaxOpenUploadsPerUser bounds the open upload sessions of one user
	// (429 beyond it); 0 means no limit.
	MaxOpenUploadsPerUser int
	// TrustWebUsers accepts the user named by the web tier in a signed
	// trusted-user field when no token is forwarded. Only for deployments
	// whose web tier sits behind a single-sign-on proxy.
	TrustWebUsers bool
	// Node names this process in audit records of its own.
	Node string
	Now  func() time.Time
	// Metrics, when set, receives audit latencies and failures.
	Metrics *metrics.Set
	// Cleanup runs the cleanup job now (an administrator's request) and
	// returns its result; nil disables it.
	Cleanup func(ctx context.Context, dryRun bool) (any, error)
	// OIDC, when set, accepts OpenID Connect ID tokens as user tokens
	// (checked against the provider's keys; identity.go) and records the
	// single sign-on events of SessionEvent.
	OIDC *OIDC
	// Scan, when set, gates every commit on a malware scan verdict
	// (services/scan.go, docs/scanning.md); nil commits unscanned.
	Scan *scan.Gate
	// OnInfected, when set, is called after an infected upload was
	// refused and recorded (the alert).
	OnInfected func(ctx context.Context, uploadID, signature string)
}

// Core does the work of every internal API call. It is safe for
// concurrent use.
type Core struct {
	cfg      Config
	log      *slog.Logger
	throttle *throttle
}

// NewCore returns a Core. It panics without a store or a database: a wiring
// error caught at start-up.
func NewCore(cfg Config) *Core {
	if cfg.Store == nil || cfg.DB == nil {
		panic("services: Store and DB are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.TempTTL <= 0 {
		cfg.TempTTL = 7 * 24 * time.Hour
	}
	return &Core{cfg: cfg, log: cfg.Log, throttle: newThrottle(cfg.Now)}
}

func (c *Core) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

// Ready reports whether the database and the storage answer.
func (c *Core) Ready(ctx context.Context) (Readiness, error) {
	if err := c.cfg.DB.Ping(ctx); err != nil {
		return Readiness{}, depot.WrapError(depot.CodeUnavailable, "database unavailable", err)
	}
	if _, err := c.cfg.Store.Objects(ctx, "", 1); err != nil {
		return Readiness{}, depot.WrapError(depot.CodeUnavailable, "storage unavailable", err)
	}
	var r Readiness
	if sp, ok, err := c.cfg.Store.Space(ctx); ok && err == nil {
		r.StorageFreeBytes, r.StorageTotalBytes = &sp.Free, &sp.Total
	}
	return r, nil
}

// Readiness is what a ready services process reports: the free and total
// bytes of its storage when the storage has a capacity (local disks).
type Readiness struct {
	StorageFreeBytes  *int64 `json:"storage_free_bytes,omitempty"`
	StorageTotalBytes *int64 `json:"storage_total_bytes,omitempty"`
}

// cohortOf returns the first segment of a key: files live under their cohort.
func cohortOf(key string) string {
	cohort, _, _ := strings.Cut(key, "/")
	return cohort
}
