package config

// Variables of the maintenance jobs (package maintenance; see
// docs/operations.md). They live in their own file so that the jobs'
// settings can be changed without touching the main table; All includes
// them.
var (
	CleanupInterval    = Var{"DEPOT_CLEANUP_INTERVAL", "1h", "period of the cleanup job (services)"}
	VerifyInterval     = Var{"DEPOT_VERIFY_INTERVAL", "24h", "period of the integrity verification job (services)"}
	ReportInterval     = Var{"DEPOT_REPORT_INTERVAL", "24h", "period of the storage report job (services)"}
	AlertWebhookURL    = Var{"DEPOT_ALERT_WEBHOOK_URL", "", "URL that maintenance alerts are POSTed to as JSON (empty: log only)"}
	CleanupLease       = Var{"DEPOT_CLEANUP_LEASE", "1h", "idle time past an upload's expiry before cleanup removes it (at least 1s)"}
	CleanupMaxFailures = Var{"DEPOT_CLEANUP_MAX_FAILURES", "5", "failed delete attempts of one file after which an alert fires"}
	VerifyRate         = Var{"DEPOT_VERIFY_RATE", "0", "integrity verification read limit in bytes per second (0: unlimited)"}
	StrayGrace         = Var{"DEPOT_STRAY_GRACE", "1h", "age before a crash leftover is removed or an orphan reported (at least 1s; 0 is refused)"}
	Maintenance        = Var{"DEPOT_MAINTENANCE", "on", "run the scheduled maintenance jobs in this services process: on or off"}
	DeletedRetention   = Var{"DEPOT_DELETED_RETENTION", "720h", "how long a deleted file's versions are kept (and it can be undeleted) before cleanup purges them"}
	AlertFormat        = Var{"DEPOT_ALERT_FORMAT", "json", "payload of alert webhooks: json (depot's own), slack (Slack, Mattermost, Teams Office 365 connector), teams (Teams Workflows Adaptive Card) or alertmanager (POST /api/v2/alerts)"}
	ReportWebhookURL   = Var{"DEPOT_REPORT_WEBHOOK_URL", "", "URL that every scheduled storage report is POSTed to (empty: none)"}
	ReportFormat       = Var{"DEPOT_REPORT_FORMAT", "json", "payload of report webhooks: json, slack or teams"}
)

// MaintenanceVars lists the maintenance variables.
var MaintenanceVars = []Var{
	CleanupInterval, VerifyInterval, ReportInterval, AlertWebhookURL, CleanupLease,
	CleanupMaxFailures, VerifyRate, StrayGrace, Maintenance, DeletedRetention, AlertFormat, ReportWebhookURL, ReportFormat,
}
