package scan

import (
	"errors"
	"fmt"
	"strings"

	"depot"
)

// Oversize policies: what happens to an upload larger than the scanner
// accepts (Policy.MaxSize, clamd's StreamMaxLength).
const (
	OversizeRefuse    = "refuse"    // 413 too_large; nothing is stored
	OversizeUnscanned = "unscanned" // committed, marked unscanned
)

// Reasons of an unscanned verdict.
const (
	ReasonUnavailable = "unavailable" // clamd down or too slow, under fail-open
	ReasonTooLarge    = "too_large"   // larger than the scanner accepts
)

// Sources of a verdict.
const (
	SourceStream = "stream" // the bytes were streamed to clamd as they were written
	SourceStored = "stored" // the stored bytes were read again at completion
)

// Verdict is the scanner's judgement of one upload (or version), as it is
// recorded in the audit trail.
type Verdict struct {
	Status    depot.ScanStatus
	Signature string // the signature found, when infected
	Engine    string // e.g. "ClamAV 1.4.6"
	Database  string // e.g. "27480/Tue Dec  2 09:27:04 2025"; "" when unversioned
	Reason    string // why unscanned
	Source    string // SourceStream or SourceStored; "" when nothing was scanned
}

// Metadata returns v as audit record metadata: scan_result and, where
// known, scan_engine, scan_database, scan_signature, scan_reason and
// scan_source.
func (v Verdict) Metadata() map[string]string {
	m := map[string]string{"scan_result": string(v.Status)}
	for k, val := range map[string]string{
		"scan_engine": v.Engine, "scan_database": v.Database, "scan_signature": v.Signature,
		"scan_reason": v.Reason, "scan_source": v.Source,
	} {
		if val != "" {
			m[k] = val
		}
	}
	return m
}

// AddTo merges v's metadata into *meta (allocating it).
func (v Verdict) AddTo(meta *map[string]string) {
	if *meta == nil {
		*meta = map[string]string{}
	}
	for k, val := range v.Metadata() {
		(*meta)[k] = val
	}
}

// splitVersion splits clamd's VERSION answer into the engine and the
// signature database ("ClamAV 1.4.6/27480/Tue Dec  2 …").
func splitVersion(s string) (engine, database string) {
	engine, database, _ = strings.Cut(s, "/")
	return engine, database
}

// infectedError is the error of an infected upload: CodeInfected, with
// the verdict for the audit record (VerdictOf).
type infectedError struct{ v Verdict }

func (e *infectedError) Error() string { return "infected: " + e.v.Signature }

func infected(v Verdict) error {
	return depot.WrapError(depot.CodeInfected,
		fmt.Sprintf("the malware scanner found %s in this file; nothing was stored", v.Signature), &infectedError{v})
}

// VerdictOf returns the verdict carried by an infected upload's error.
func VerdictOf(err error) (Verdict, bool) {
	var ie *infectedError
	if errors.As(err, &ie) {
		return ie.v, true
	}
	return Verdict{}, false
}
