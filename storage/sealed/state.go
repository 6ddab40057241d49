package sealed

import (
	"bytes"
	"crypto/cipher"
	"encoding/gob"
	"encoding/json"
	"fmt"

	"depot/storage"
)

// state is Staging.State of a sealed staging area.
type state struct {
	Inner  []byte `json:"inner,omitempty"` // the wrapped driver's Staging.State
	Header []byte `json:"header"`          // the age header, staged at offset 0
	// Key is the header's file key sealed under the state key
	// (statekey.go), so that a chunk needs no X25519 unwrap; empty in a
	// session of an older build, whose file key comes from Header.
	Key   []byte `json:"key,omitempty"`
	Nonce []byte `json:"nonce"` // the payload nonce, staged after it
	Segs  int64  `json:"segs"`  // full segments staged (none of them the last)
	// Tail is the plaintext past Segs segments (TailLen bytes, 0 to 64
	// KiB), sealed under the state key (statekey.go; a small age file under
	// the KEK in a session of an older build); empty when TailLen is 0.
	Tail    []byte `json:"tail,omitempty"`
	TailLen int64  `json:"tail_len"`
	// Tags are the Poly1305 tags of segments Segs, Segs+1, … that a write
	// which has not (yet) succeeded may have stored; see the package doc.
	Tags [][]byte `json:"tags,omitempty"`
	// Final is the tag of a final segment (counter Segs, last flag) that
	// a Publish may have stored.
	Final []byte `json:"final,omitempty"`
}

func (s *state) innerStaging(id string) *storage.Staging {
	return &storage.Staging{ID: id, State: s.Inner}
}

func (s *state) payloadAt(counter int64) int64 {
	return int64(len(s.Header)) + nonceSize + counter*encSeg
}

// stateGob starts a state encoded with encoding/gob; an older build's
// state is JSON (it starts with '{').
const stateGob = 0xd5

// decodeState decodes a staging area's state, gob or (from an older
// build) JSON.
func decodeState(st *storage.Staging) (*state, error) {
	if len(st.State) == 0 {
		return nil, fmt.Errorf("sealed: staging area %s has no state: %w", st.ID, storage.ErrNotExist)
	}
	var s state
	var err error
	if st.State[0] == stateGob {
		err = gob.NewDecoder(bytes.NewReader(st.State[1:])).Decode(&s)
	} else {
		err = json.Unmarshal(st.State, &s)
	}
	if err != nil {
		return nil, fmt.Errorf("sealed: staging state of %s: %w", st.ID, err)
	}
	return &s, nil
}

// payload returns the STREAM cipher of staging state s. Its file key is
// opened from s.Key (a session of an older build unwraps Header instead)
// and checked against the header's MAC, so that nothing is encrypted under
// a key the staged header does not hold.
func (d *Driver) payload(s *state) (cipher.AEAD, error) {
	if len(s.Key) == 0 {
		fileKey, err := d.keys.fileKey(s.Header)
		if err != nil {
			return nil, err
		}
		return payloadAEAD(fileKey, s.Nonce)
	}
	fileKey, err := d.keys.open(s.Key)
	if err != nil {
		return nil, wrap("staged file key", err)
	}
	if !headerMatches(s.Header, fileKey) {
		return nil, fmt.Errorf("%w: the staged file key does not match the staged header", ErrCorrupt)
	}
	return payloadAEAD(fileKey, s.Nonce)
}

// encodeState encodes s with encoding/gob, which copies the tail's bytes
// where JSON spent more time on its base64 than a chunk's whole state
// otherwise costs (BenchmarkSmallChunks).
func encodeState(s *state) []byte {
	b := bytes.NewBuffer(make([]byte, 0, 512+len(s.Tail)+len(s.Inner)))
	b.WriteByte(stateGob)
	_ = gob.NewEncoder(b).Encode(s) // plain data into memory: cannot fail
	return b.Bytes()
}
