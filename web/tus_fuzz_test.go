package web

import (
	"encoding/base64"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"depot"
	"depot/internal/wire"
)

// FuzzTusHeaders feeds arbitrary Upload-Metadata, Upload-Checksum and
// Upload-Offset/Upload-Length values to the tus header parsing: it must never
// panic, decoded metadata must re-encode to pairs that decode to the same
// map, and a checksum is accepted only with a known algorithm and a digest
// of the right length.
func FuzzTusHeaders(f *testing.F) {
	f.Add("cohort YzE=,filename YS5jc3Y=", "sha256 "+base64.StdEncoding.EncodeToString(make([]byte, 32)), "0")
	f.Add("k", "sha1 AAAA", "-1")
	f.Add(",,, ,", "md5 xyz", "9223372036854775808")
	f.Add("a !!!,b ====", "SHA256", "")
	f.Add("", "", "+5")
	f.Add("", "", " 5")
	f.Add("", "", "007")
	s := New(Config{Backend: deniedBackend{}})
	f.Fuzz(func(t *testing.T, meta, checksum, offset string) {
		m, err := parseTusMetadata(meta)
		if err == nil {
			var pairs []string
			for k, v := range m {
				if k == "" || strings.ContainsAny(k, " ,") {
					t.Fatalf("accepted key %q", k)
				}
				pairs = append(pairs, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
			}
			back, err := parseTusMetadata(strings.Join(pairs, ","))
			if err != nil || len(back) != len(m) {
				t.Fatalf("re-encoded metadata does not decode back: %v", err)
			}
			for k, v := range m {
				if back[k] != v {
					t.Fatalf("key %q: %q became %q", k, v, back[k])
				}
			}
		}
		// Offsets and lengths: decimal digits only, within int64; what is
		// accepted formats back to itself (leading zeros aside).
		if n, ok := parseTusInt(offset); ok {
			if n < 0 || strings.TrimLeft(offset, "0") != strings.TrimLeft(strconv.FormatInt(n, 10), "0") {
				t.Fatalf("Upload-Offset %q parsed as %d", offset, n)
			}
		} else if offset != "" && len(offset) <= 18 && strings.Trim(offset, "0123456789") == "" {
			t.Fatalf("Upload-Offset %q refused", offset)
		}
		req := httptest.NewRequest("PATCH", "/api/v1/uploads/x", nil)
		req.Header.Set("Upload-Checksum", checksum)
		sum, err := s.parseChecksum(req)
		if err == nil && sum != nil {
			if len(sum.want) != sum.h.Size() {
				t.Fatalf("accepted a %d-byte digest for a %d-byte hash", len(sum.want), sum.h.Size())
			}
		}
	})
}

// FuzzUploadConcat feeds arbitrary Upload-Concat values to its parsing: it
// must never panic; a final upload is accepted only with 1 to 100 parts,
// each a valid upload ID, and the header depot answers for it parses back
// to the same parts.
func FuzzUploadConcat(f *testing.F) {
	id := strings.Repeat("ab", 16)
	f.Add("partial")
	f.Add("final;/api/v1/uploads/" + id + " http://h/api/v1/uploads/" + id)
	f.Add("final;")
	f.Add("final; /api/v1/uploads/../x")
	f.Add("final;https://h:1/api/v1/uploads/" + id + "?q#f")
	f.Add("final;%zz")
	f.Fuzz(func(t *testing.T, v string) {
		kind, parts, err := parseConcat(v, []string{v})
		if err != nil {
			return
		}
		switch kind {
		case "", wire.ConcatPartial:
			if len(parts) != 0 {
				t.Fatalf("%q: %s with parts %v", v, kind, parts)
			}
		case wire.ConcatFinal:
			if len(parts) == 0 || len(parts) > maxConcatParts {
				t.Fatalf("%q: %d parts accepted", v, len(parts))
			}
			for _, p := range parts {
				if !validUploadID(p) {
					t.Fatalf("%q: part %q accepted", v, p)
				}
			}
			u := depot.Upload{Meta: map[string]string{wire.MetaConcat: wire.ConcatFinal, wire.MetaConcatParts: strings.Join(parts, " ")}}
			h := concatHeader(u)
			_, back, err := parseConcat(h, []string{h})
			if err != nil || strings.Join(back, " ") != strings.Join(parts, " ") {
				t.Fatalf("%q: the answered %q parses to %v, %v", v, h, back, err)
			}
		default:
			t.Fatalf("%q: kind %q", v, kind)
		}
	})
}
