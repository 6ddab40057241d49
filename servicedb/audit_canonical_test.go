package servicedb_test

import (
	"encoding/binary"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

// The canonical encoding is a stored format: this pins it. Changing it
// breaks every existing chain, so it needs a new CanonicalVersion. The value
// was also computed by an independent implementation of the documented
// encoding (a short Python script), not only by Canonical itself.
func TestCanonicalGolden(t *testing.T) {
	t.Parallel()
	ev := sampleEvent(7)
	ev.Seq, ev.PrevHash = 42, servicedb.GenesisHash
	const want = "7482c979f9b024af18bee879d2e345af4e6d369f203927614b2f84ce96e35dca"
	if got := servicedb.Hash(ev); got != want {
		t.Fatalf("Hash = %s, want %s", got, want)
	}
}

func TestCanonicalFields(t *testing.T) {
	t.Parallel()
	b := servicedb.Canonical(depot.AuditEvent{Seq: 1, Metadata: map[string]string{"b": "2", "a": "1"}})
	var fields []string
	for len(b) > 0 {
		n := binary.BigEndian.Uint32(b)
		fields = append(fields, string(b[4:4+n]))
		b = b[4+n:]
	}
	// 26 fixed fields before metadata, then N and 2N entries, then prev_hash.
	if len(fields) != 26+1+4+1 {
		t.Fatalf("%d fields: %q", len(fields), fields)
	}
	if fields[0] != servicedb.CanonicalVersion || fields[1] != "1" || fields[21] != "" ||
		fields[26] != "2" || fields[27] != "a" || fields[28] != "1" || fields[29] != "b" {
		t.Fatalf("fields = %q", fields)
	}
	// Every field counts: changing any one changes the hash.
	base := sampleEvent(1)
	h := servicedb.Hash(base)
	zero := time.Unix(0, 0).UTC()
	for name, mut := range map[string]func(*depot.AuditEvent){
		"seq":      func(e *depot.AuditEvent) { e.Seq++ },
		"time":     func(e *depot.AuditEvent) { e.Time = e.Time.Add(time.Millisecond) },
		"actor":    func(e *depot.AuditEvent) { e.Actor += "x" },
		"start":    func(e *depot.AuditEvent) { e.StreamStart = &zero },
		"nilstart": func(e *depot.AuditEvent) { e.StreamStart = nil },
		"size":     func(e *depot.AuditEvent) { e.StoredSize = -1 },
		"meta":     func(e *depot.AuditEvent) { e.Metadata["rows"] = "x" },
		"prev":     func(e *depot.AuditEvent) { e.PrevHash = servicedb.GenesisHash },
		"shift":    func(e *depot.AuditEvent) { e.Actor, e.AuthMethod = e.Actor+e.AuthMethod, "" },
	} {
		ev := sampleEvent(1)
		mut(&ev)
		if servicedb.Hash(ev) == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}
