package services

import (
	"net/http"
	"strconv"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
	"depot/storage"
)

func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateUpload
	if !decodeBody(w, r, &req, false) {
		return
	}
	u, err := s.core.CreateUpload(r.Context(), callerOf(r), UploadRequest{
		Key: req.Key, Size: req.Size, SHA256: req.SHA256, Class: req.Class, FileName: req.FileName,
		Resumable: req.Resumable, Meta: req.Meta, IfMatch: req.IfMatch, IfNoneMatch: req.IfNoneMatch,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set(wire.HeaderOffset, "0")
	httpx.WriteJSON(w, http.StatusCreated, u)
}

func (s *Server) getUpload(w http.ResponseWriter, r *http.Request) {
	u, err := s.core.Upload(r.Context(), callerOf(r), r.PathValue("id"), r.Header.Get(wire.HeaderResume) == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set(wire.HeaderOffset, strconv.FormatInt(u.Offset, 10))
	httpx.WriteJSON(w, http.StatusOK, u)
}

// appendUpload appends one chunk (HeaderOffset, HeaderCRC32C and a
// Content-Length required) and, with HeaderComplete, commits the upload
// after it.
func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request) {
	offset, err := strconv.ParseInt(r.Header.Get(wire.HeaderOffset), 10, 64)
	if err != nil || offset < 0 {
		writeError(w, depot.Errorf(depot.CodeInvalid, "missing or invalid %s header", wire.HeaderOffset))
		return
	}
	req := AppendRequest{Resume: r.Header.Get(wire.HeaderResume) == "1", Complete: r.Header.Get(wire.HeaderComplete) == "1", Size: -1}
	if v := r.Header.Get(wire.HeaderSize); req.Complete && v != "" {
		if req.Size, err = strconv.ParseInt(v, 10, 64); err != nil || req.Size < 0 {
			writeError(w, depot.Errorf(depot.CodeInvalid, "invalid %s header", wire.HeaderSize))
			return
		}
	}
	var body interface{ Done() }
	if req.Chunk, body, err = s.chunkOf(w, r, offset); err != nil {
		writeError(w, err)
		return
	}
	req.Chunk.Lazy = r.Header.Get(wire.HeaderLazy) == "1" && !req.Complete
	u, obj, err := s.core.Append(r.Context(), callerOf(r), r.PathValue("id"), req)
	body.Done()
	if u.ID != "" {
		w.Header().Set(wire.HeaderOffset, strconv.FormatInt(u.Offset, 10))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, wire.AppendResult{Upload: u, Version: obj})
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request) {
	req := wire.CompleteUpload{Size: -1}
	if !decodeBody(w, r, &req, true) {
		return
	}
	obj, err := s.core.Complete(r.Context(), callerOf(r), r.PathValue("id"), storage.Want{Size: req.Size, SHA256: req.SHA256})
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, obj)
}

func (s *Server) abortUpload(w http.ResponseWriter, r *http.Request) {
	reason := r.Header.Get(wire.HeaderReason)
	if !validReason(reason) {
		writeError(w, depot.Errorf(depot.CodeInvalid, "invalid %s header", wire.HeaderReason))
		return
	}
	if err := s.core.Abort(r.Context(), callerOf(r), r.PathValue("id"), depot.Code(reason)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validReason accepts "" or a short identifier of lowercase letters and
// underscores (an error code).
func validReason(s string) bool {
	if len(s) > 40 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}
