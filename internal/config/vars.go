// Package config is the one list of depot's configuration variables. Every
// DEPOT_* variable is declared here with its flag, default and meaning;
// commands bind their flags from this table, and docs/configuration.md is
// checked against it by a test.
package config

import (
	"strings"
)

// Var is one configuration variable. Flag is derived from Env:
// DEPOT_SERVICES_URL ⇔ --services-url.
type Var struct {
	Env     string
	Default string
	Usage   string
}

// Flag returns the flag name of v.
func (v Var) Flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v.Env, "DEPOT_")), "_", "-")
}

// Variables of depot, by name.
var (
	Role            = Var{"DEPOT_ROLE", "", "role of this process: web or services (required)"}
	Addr            = Var{"DEPOT_ADDR", "127.0.0.1:8080", "public listener of the web tier"}
	InternalAddr    = Var{"DEPOT_INTERNAL_ADDR", "127.0.0.1:8081", "internal API listener of the services tier"}
	ServicesURL     = Var{"DEPOT_SERVICES_URL", "", "base URL of the services tier's internal API (web)"}
	InternalKey     = Var{"DEPOT_INTERNAL_KEY", "", "internal key the web tier presents to services"}
	InternalKeyFile = Var{"DEPOT_INTERNAL_KEY_FILE", "", "file holding the internal key (web); overrides DEPOT_INTERNAL_KEY"}
	InternalKeys    = Var{"DEPOT_INTERNAL_KEYS", "", "comma-separated internal keys accepted by services (two during a rotation)"}
	InternalKeysFil = Var{"DEPOT_INTERNAL_KEYS_FILE", "", "file with accepted internal keys, one per line (services)"}
	StorageURL      = Var{"DEPOT_STORAGE_URL", "", "storage of the services tier: file:///absolute/path"}
	DatabaseURL     = Var{"DEPOT_DATABASE_URL", "", "database of the services tier: sqlite:///path/depot.db or postgres://..."}
	ChunkSize       = Var{"DEPOT_CHUNK_SIZE", "8388608", "bytes per chunk streamed from web to services (held in memory)"}
	ChunkRetries    = Var{"DEPOT_CHUNK_RETRIES", "5", "retries of a chunk that failed on the network"}
	ChunkBackoff    = Var{"DEPOT_CHUNK_BACKOFF", "100ms", "first retry delay of a failed chunk, doubled per retry"}
	BodyIdle        = Var{"DEPOT_BODY_IDLE_TIMEOUT", "60s", "a request body that delivers no byte for this long is cut off"}
	UploadExpiry    = Var{"DEPOT_UPLOAD_EXPIRY", "24h", "idle time after which an incomplete upload expires"}
	TempTTL         = Var{"DEPOT_TEMP_TTL", "168h", "lifetime of a temporary file before its cleanup is due"}
	ShutdownGrace   = Var{"DEPOT_SHUTDOWN_GRACE", "30s", "how long in-flight requests may drain on SIGTERM"}
	NodeName        = Var{"DEPOT_NODE_NAME", "", "name of this process in audit records (default: host name)"}
	LogLevel        = Var{"DEPOT_LOG_LEVEL", "info", "log level: debug, info, warn, error"}
	DataDir         = Var{"DEPOT_DATA_DIR", "./depot-data", "data directory of depot dev"}
)

// All lists every variable, for documentation checks.
var All = []Var{
	Role, Addr, InternalAddr, ServicesURL, InternalKey, InternalKeyFile, InternalKeys, InternalKeysFil,
	StorageURL, DatabaseURL, ChunkSize, ChunkRetries, ChunkBackoff, BodyIdle, UploadExpiry, TempTTL,
	ShutdownGrace, NodeName, LogLevel, DataDir,
}
