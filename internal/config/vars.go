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
	InternalKey     = Var{"DEPOT_INTERNAL_KEY", "", "internal key the web tier presents to services: hex or base64 of at least 32 random bytes; from the environment or DEPOT_INTERNAL_KEY_FILE only (the flag is refused)"}
	InternalKeyFile = Var{"DEPOT_INTERNAL_KEY_FILE", "", "file holding the internal key (web); overrides DEPOT_INTERNAL_KEY"}
	InternalKeys    = Var{"DEPOT_INTERNAL_KEYS", "", "comma-separated internal keys accepted by services (two during a rotation), each hex or base64 of at least 32 random bytes; from the environment or DEPOT_INTERNAL_KEYS_FILE only (the flag is refused)"}
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

	TLSCert           = Var{"DEPOT_TLS_CERT", "", "certificate file (PEM) of the web tier's public HTTPS listener"}
	TLSKey            = Var{"DEPOT_TLS_KEY", "", "private key file (PEM) of the web tier's public HTTPS listener"}
	InternalTLSCert   = Var{"DEPOT_INTERNAL_TLS_CERT", "", "certificate file (PEM) of the services tier's internal HTTPS listener"}
	InternalTLSKey    = Var{"DEPOT_INTERNAL_TLS_KEY", "", "private key file (PEM) of the services tier's internal HTTPS listener"}
	InternalClientCA  = Var{"DEPOT_INTERNAL_CLIENT_CA", "", "CA file (PEM); when set, services requires web's client certificates signed by it (mutual TLS)"}
	ServicesCA        = Var{"DEPOT_SERVICES_CA", "", "CA file (PEM) the web tier trusts for the services tier's certificate"}
	ServicesClientCrt = Var{"DEPOT_SERVICES_CLIENT_CERT", "", "client certificate (PEM) the web tier presents to services (mutual TLS)"}
	ServicesClientKey = Var{"DEPOT_SERVICES_CLIENT_KEY", "", "private key (PEM) of the web tier's client certificate"}
	ClockSkew         = Var{"DEPOT_CLOCK_SKEW", "60s", "how far a signed internal request's timestamp may be from the services clock"}
	MaxUploadSize     = Var{"DEPOT_MAX_UPLOAD_SIZE", "0", "largest accepted upload in bytes; 0 means no limit"}
	MaxUploadsPerUser = Var{"DEPOT_MAX_UPLOADS_PER_USER", "8", "concurrent uploads one user may run through one web process"}
	MaxBuffers        = Var{"DEPOT_MAX_BUFFERS", "16", "chunk buffers of one web process for all uploads (memory = this × chunk size); beyond it uploads wait"}
	ReadHeaderTimeout = Var{"DEPOT_READ_HEADER_TIMEOUT", "10s", "time allowed to send request headers (slow-header protection)"}
	MaxHeaderBytes    = Var{"DEPOT_MAX_HEADER_BYTES", "65536", "largest accepted request header block in bytes"}
	MetricsAddr       = Var{"DEPOT_METRICS_ADDR", "", "listener for Prometheus metrics at /metrics (off when empty); keep it private"}
	Pprof             = Var{"DEPOT_PPROF", "off", "on: also serve Go's profiler (net/http/pprof) at /debug/pprof/ on the metrics listener, for profiling and stuck-request diagnosis (never /debug/pprof/cmdline)"}
	URL               = Var{"DEPOT_URL", "", "address of depot's web tier, for the command-line client (upload, download, ls, rm)"}
	Token             = Var{"DEPOT_TOKEN", "", "personal access token of the command-line client"}
	TrustedUserHeader = Var{"DEPOT_TRUSTED_USER_HEADER", "", "header carrying the user authenticated by a single-sign-on proxy (web); off when empty"}
	TrustedProxies    = Var{"DEPOT_TRUSTED_PROXIES", "", "comma-separated addresses or CIDRs of the reverse proxies in front of web: their X-Forwarded-For gives the client's address (audit, sign-in throttle) and their user header is honoured; with DEPOT_TRUSTED_USER_HEADER no prefix may be wider than /8 (IPv4) or /32 (IPv6)"}
	TrustWebUsers     = Var{"DEPOT_TRUST_WEB_USERS", "off", "on: services accepts users vouched for by web's trusted header (signed requests only)"}
	MaxOpenUploads    = Var{"DEPOT_MAX_OPEN_UPLOADS_PER_USER", "100", "unfinished upload sessions one user may hold at once, counted by services over every web process (429 beyond it); 0 means no limit"}
	SFTPAddr          = Var{"DEPOT_SFTP_ADDR", "", "web: listener of the SFTP entrance (e.g. :2022); off when empty (docs/sftp.md)"}
	SFTPHostKeyFile   = Var{"DEPOT_SFTP_HOST_KEY_FILE", "", "web: comma-separated files of the SFTP server's private host keys (OpenSSH or PEM format); required with DEPOT_SFTP_ADDR"}
	SFTPMaxConns      = Var{"DEPOT_SFTP_MAX_CONNECTIONS", "64", "web: SSH connections the SFTP entrance serves at once; one more is closed at once"}
	KEKFile           = Var{"DEPOT_KEK_FILE", "", "comma-separated age X25519 identity files (depot keys generate): key-encryption keys of encryption at rest (services and the commands that read storage); the first encrypts new objects, all decrypt; encryption is on whenever set"}
	ServicesTimeout   = Var{"DEPOT_SERVICES_TIMEOUT", "60s", "web: how long a request to services may wait with no byte moving either way before web answers 503 (a hung services tier); 0 disables"}
)

// Single sign-on with OpenID Connect (docs/sso.md).
var (
	OIDCIssuer         = Var{"DEPOT_OIDC_ISSUER", "", "issuer URL of the OpenID Connect provider for single sign-on (web and services); off when empty"}
	OIDCClientID       = Var{"DEPOT_OIDC_CLIENT_ID", "", "depot's client ID at the provider (web; services accepts ID tokens issued to it)"}
	OIDCClientSecret   = Var{"DEPOT_OIDC_CLIENT_SECRET", "", "secret of the web client at the provider (web); empty for a public client (PKCE only)"}
	OIDCClientSecFile  = Var{"DEPOT_OIDC_CLIENT_SECRET_FILE", "", "file holding the web client's secret (web); overrides DEPOT_OIDC_CLIENT_SECRET"}
	OIDCCLIClientID    = Var{"DEPOT_OIDC_CLI_CLIENT_ID", "", "client ID of depot login (device flow) when registered apart: web announces it, services accepts it; default DEPOT_OIDC_CLIENT_ID"}
	OIDCProviderName   = Var{"DEPOT_OIDC_PROVIDER_NAME", "", "name on the page's sign-in button (web); default the issuer's host name"}
	OIDCScopes         = Var{"DEPOT_OIDC_SCOPES", "openid email profile offline_access", "space-separated scopes asked for (web); add the provider's scope for group claims if it has one"}
	PublicURL          = Var{"DEPOT_PUBLIC_URL", "", "address users reach web at, https://host[:port] (web); needed for single sign-on: the redirect URI is this plus /auth/callback"}
	SessionKeys        = Var{"DEPOT_SESSION_KEYS", "", "comma-separated secrets of at least 32 characters sealing the session cookies (web): the first seals, all open; give every web process the same list"}
	SessionKeysFile    = Var{"DEPOT_SESSION_KEYS_FILE", "", "file with the session cookie secrets, one per line (web); overrides DEPOT_SESSION_KEYS"}
	SessionTTL         = Var{"DEPOT_SESSION_TTL", "15m", "lifetime of a session cookie; renewed with the refresh token while the page is in use"}
	SessionMaxAge      = Var{"DEPOT_SESSION_MAX_AGE", "12h", "longest a session lasts from its sign-in, renewals included; then the person signs in again"}
	OIDCCreateUsers    = Var{"DEPOT_OIDC_CREATE_USERS", "off", "on: services creates a depot user (named by DEPOT_OIDC_USER_CLAIM) at a person's first sign-in"}
	OIDCLinkUsers      = Var{"DEPOT_OIDC_LINK_USERS", "on", "on: a person's first sign-in binds the existing depot user named by DEPOT_OIDC_USER_CLAIM (an email only when the provider marks it verified)"}
	OIDCUserClaim      = Var{"DEPOT_OIDC_USER_CLAIM", "email", "claim that names the depot user at a person's first sign-in (services)"}
	OIDCGroupsClaim    = Var{"DEPOT_OIDC_GROUPS_CLAIM", "groups", "claim listing the person's groups at the provider (services)"}
	OIDCGroupRoles     = Var{"DEPOT_OIDC_GROUP_ROLES", "", "cohort roles granted by provider groups: GROUP=COHORT:ROLE entries separated by ; (services)"}
	OIDCGroupRolesFile = Var{"DEPOT_OIDC_GROUP_ROLES_FILE", "", "file of GROUP=COHORT:ROLE lines (services); overrides DEPOT_OIDC_GROUP_ROLES"}
)

// OIDCWeb and OIDCServices are the single sign-on variables each tier reads.
var (
	OIDCWeb = []Var{OIDCIssuer, OIDCClientID, OIDCClientSecret, OIDCClientSecFile, OIDCCLIClientID, OIDCProviderName,
		OIDCScopes, PublicURL, SessionKeys, SessionKeysFile, SessionTTL, SessionMaxAge}
	OIDCServices = []Var{OIDCIssuer, OIDCClientID, OIDCCLIClientID, OIDCCreateUsers, OIDCLinkUsers, OIDCUserClaim,
		OIDCGroupsClaim, OIDCGroupRoles, OIDCGroupRolesFile}
)

// Audit checkpoints (docs/audit.md).
var (
	AuditSigningKeyFile     = Var{"DEPOT_AUDIT_SIGNING_KEY_FILE", "", "Ed25519 key file (depot keys generate-signing) with which services signs audit checkpoints; with a witness, turns checkpoints and the audit-verify job on"}
	AuditPublicKeyFile      = Var{"DEPOT_AUDIT_PUBLIC_KEY_FILE", "", "public key file that audit verify --checkpoints and audit check-proof trust (default: the public half of DEPOT_AUDIT_SIGNING_KEY_FILE)"}
	AuditWitnessDir         = Var{"DEPOT_AUDIT_WITNESS_DIR", "", "directory that receives every audit checkpoint (a mount the database's administrators cannot write)"}
	AuditWitnessS3          = Var{"DEPOT_AUDIT_WITNESS_S3", "", "s3://bucket/prefix?endpoint=...&region=... that receives every audit checkpoint (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"}
	AuditWitnessURL         = Var{"DEPOT_AUDIT_WITNESS_URL", "", "HTTP(S) witness that every audit checkpoint is POSTed to (protocol in docs/audit.md)"}
	AuditCheckpointRecords  = Var{"DEPOT_AUDIT_CHECKPOINT_RECORDS", "1000", "services signs an audit checkpoint after this many new records"}
	AuditCheckpointInterval = Var{"DEPOT_AUDIT_CHECKPOINT_INTERVAL", "1m", "services signs an audit checkpoint at most this long after a new record (and one at shutdown)"}
	AuditVerifyInterval     = Var{"DEPOT_AUDIT_VERIFY_INTERVAL", "1h", "period of the audit-verify job, which checks the trail against its checkpoints (services, checkpoints on)"}
)

// AuditVars are the audit checkpoint variables (services and the audit
// commands).
var AuditVars = []Var{
	AuditSigningKeyFile, AuditPublicKeyFile, AuditWitnessDir, AuditWitnessS3, AuditWitnessURL,
	AuditCheckpointRecords, AuditCheckpointInterval, AuditVerifyInterval,
}

// All lists every variable, for documentation checks.
var All = append([]Var{
	Role, Addr, InternalAddr, ServicesURL, InternalKey, InternalKeyFile, InternalKeys, InternalKeysFil,
	StorageURL, DatabaseURL, ChunkSize, ChunkRetries, ChunkBackoff, BodyIdle, UploadExpiry, TempTTL,
	ShutdownGrace, NodeName, LogLevel, DataDir, TLSCert, TLSKey, InternalTLSCert, InternalTLSKey,
	InternalClientCA, ServicesCA, ServicesClientCrt, ServicesClientKey, ClockSkew, MaxUploadSize,
	MaxUploadsPerUser, MaxBuffers, ReadHeaderTimeout, MaxHeaderBytes, MetricsAddr, Pprof, URL, Token, TrustedUserHeader, TrustedProxies, TrustWebUsers,
	MaxOpenUploads, ServicesTimeout, SFTPAddr, SFTPHostKeyFile, SFTPMaxConns, KEKFile,
	OIDCIssuer, OIDCClientID, OIDCClientSecret, OIDCClientSecFile, OIDCCLIClientID, OIDCProviderName, OIDCScopes, PublicURL,
	SessionKeys, SessionKeysFile, SessionTTL, SessionMaxAge, OIDCCreateUsers, OIDCLinkUsers, OIDCUserClaim, OIDCGroupsClaim,
	OIDCGroupRoles, OIDCGroupRolesFile,
	AuditSigningKeyFile, AuditPublicKeyFile, AuditWitnessDir, AuditWitnessS3, AuditWitnessURL,
	AuditCheckpointRecords, AuditCheckpointInterval, AuditVerifyInterval,
}, append(MaintenanceVars, ScanVars...)...)
