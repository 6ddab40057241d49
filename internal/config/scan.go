package config

// Variables of malware scanning (package scan; see docs/scanning.md). They
// are read by the services role and by `depot scan`; All includes them.
var (
	Scan         = Var{"DEPOT_SCAN", "off", "malware scanning of uploads before they are committed: off or clamav (services)"}
	ClamdAddr    = Var{"DEPOT_CLAMD_ADDR", "", "clamd's socket: unix:/path/to/clamd.ctl or tcp:host:port (required with DEPOT_SCAN=clamav)"}
	ScanTimeout  = Var{"DEPOT_SCAN_TIMEOUT", "30s", "longest wait on clamd: to connect, to take a write, or to answer at the end of a file (the scan); past it clamd counts as unavailable"}
	ScanFailOpen = Var{"DEPOT_SCAN_FAIL_OPEN", "off", "on: when clamd is unavailable or times out, commit uploads marked unscanned (rescanned later) instead of refusing them with 503"}
	ScanMaxSize  = Var{"DEPOT_SCAN_MAX_SIZE", "104857600", "largest upload in bytes the scanner takes: set it to clamd's StreamMaxLength (0: no limit)"}
	ScanOversize = Var{"DEPOT_SCAN_OVERSIZE", "refuse", "uploads larger than DEPOT_SCAN_MAX_SIZE: refuse (413 too_large) or unscanned (committed, marked unscanned)"}
	ScanStreams  = Var{"DEPOT_SCAN_STREAMS", "8", "uploads one services process streams to clamd at once while they are written (keep below clamd's MaxThreads); others are scanned from their stored bytes at completion"}
	ScanInterval = Var{"DEPOT_SCAN_INTERVAL", "1h", "period of the job that rescans versions committed unscanned (services)"}
)

// ScanVars lists the scanning variables.
var ScanVars = []Var{Scan, ClamdAddr, ScanTimeout, ScanFailOpen, ScanMaxSize, ScanOversize, ScanStreams, ScanInterval}
