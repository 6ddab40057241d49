package checkpointtest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// WitnessServer is an HTTP witness (the protocol of checkpoint.HTTP) for
// tests: it keeps the checkpoints POSTed to it in memory and lists them on
// GET. While Down is set it answers 503 to POSTs.
type WitnessServer struct {
	mu    sync.Mutex
	notes []string
	down  bool
	// Got receives the name of every checkpoint taken (never blocks: it
	// drops when full).
	Got chan string
}

// NewWitnessServer returns an empty witness.
func NewWitnessServer() *WitnessServer { return &WitnessServer{Got: make(chan string, 1024)} }

// SetDown makes the witness refuse (true) or take (false) checkpoints.
func (s *WitnessServer) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Notes returns the checkpoints taken, in order.
func (s *WitnessServer) Notes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notes...)
}

// ServeHTTP implements the witness protocol.
func (s *WitnessServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		down := s.down
		if !down {
			s.notes = append(s.notes, string(b))
		}
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		select {
		case s.Got <- r.Header.Get("Depot-Checkpoint-Name"):
		default:
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string][]string{"checkpoints": s.Notes()})
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	}
}
