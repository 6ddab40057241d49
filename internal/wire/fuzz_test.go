package wire

import (
	"encoding/json"
	"testing"

	"depot"
)

// FuzzDecodeRequest decodes what services decodes from the internal hop —
// percent-encoded keys from headers and the JSON bodies of upload requests —
// and checks that decoding never panics and that a decoded key either passes
// the key policy or is refused by it with invalid_path.
func FuzzDecodeRequest(f *testing.F) {
	f.Add("c1%2Fa.csv", []byte(`{"key":"c1/a.csv","size":12,"sha256":"","class":"permanent"}`))
	f.Add("%2e%2e%2Fx", []byte(`{"key":"../x","size":-1}`))
	f.Add("%zz", []byte(`{"size":"x"}`))
	f.Add("", []byte(`{"key":"a","metadata":{"k":"v"}}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if key, err := DecodeKey(header); err == nil {
			if verr := depot.ValidateKey(key); verr != nil && depot.ErrorCode(verr) != depot.CodeInvalidPath {
				t.Fatalf("key %q: %v", key, verr)
			}
			if back, err := DecodeKey(EncodeKey(key)); err != nil || back != key {
				t.Fatalf("round trip of %q gave %q, %v", key, back, err)
			}
		}
		var cu CreateUpload
		if json.Unmarshal(body, &cu) == nil {
			if err := depot.ValidateKey(cu.Key); err != nil && depot.ErrorCode(err) != depot.CodeInvalidPath {
				t.Fatalf("key %q: %v", cu.Key, err)
			}
		}
		var cp CompleteUpload
		_ = json.Unmarshal(body, &cp)
	})
}
