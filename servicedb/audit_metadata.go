package servicedb

import (
	"encoding/json"
	"errors"
)

// NonCanonicalMetadata is the only metadata key of a record read back whose
// stored metadata is not in canonical form (see MetadataJSON); its value is
// the stored text. Such a record no longer matches its hash, so VerifyChain
// reports it as modified, and an export shows exactly what is stored.
const NonCanonicalMetadata = "_noncanonical_metadata"

// errNonCanonical is returned by ParseMetadata for text that is valid JSON
// but not the canonical encoding of what it parses to.
var errNonCanonical = errors.New("audit metadata is not in canonical form")

// MetadataJSON returns the one stored encoding of an audit record's
// metadata: "{}" when m is empty, otherwise what encoding/json writes for a
// map[string]string — an object with keys unique and in ascending byte
// order, no whitespace, strings escaped as encoding/json escapes them
// (including <, > and & as \u003c, \u003e, \u0026). Keys and values must
// be valid UTF-8 (Append cleans them first).
func MetadataJSON(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// ParseMetadata parses stored metadata and accepts it only when it is
// exactly MetadataJSON of the map it parses to. Anything else — a duplicated
// key (which SQL's JSON functions and encoding/json resolve differently),
// keys out of order, whitespace, another escaping, a non-string value,
// "null" — is refused, so that one record cannot be read two ways. The map
// is nil for "{}".
func ParseMetadata(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	canon, err := MetadataJSON(m)
	if err != nil {
		return nil, err
	}
	if canon != s {
		return nil, errNonCanonical
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
