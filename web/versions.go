package web

import (
	"net/http"
	"strconv"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

// HistoryJSON is a file's history (GET …?versions): its versions whose
// bytes are kept, newest first.
type HistoryJSON struct {
	Cohort   string        `json:"cohort"`
	Path     string        `json:"path"`
	Deleted  *time.Time    `json:"deleted,omitempty"`
	Versions []VersionJSON `json:"versions"`
}

// VersionJSON is one version in a history.
type VersionJSON struct {
	FileJSON
	Current bool `json:"current"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	h, err := s.cfg.Backend.History(r.Context(), s.caller(w, r), key)
	if err != nil {
		writeError(w, err)
		return
	}
	out := HistoryJSON{Cohort: t.cohort, Path: t.rest, Deleted: h.Deleted, Versions: make([]VersionJSON, len(h.Versions))}
	for i, v := range h.Versions {
		out.Versions[i] = VersionJSON{FileJSON: publicObject(v.Object, t.cohort), Current: v.Current}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// undelete is POST …?undelete: a manager brings a deleted file back.
func (s *Server) undelete(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.cfg.Backend.Undelete(r.Context(), s.caller(w, r), key)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicObject(obj, t.cohort))
}

// restore is POST …?restore=VERSION: a manager makes an old version the
// current one.
func (s *Server) restore(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	version := r.URL.Query().Get("restore")
	if version == "" {
		writeError(w, errorf(depot.CodeInvalid, "restore needs a version: ?restore=VERSION"))
		return
	}
	obj, err := s.cfg.Backend.RestoreVersion(r.Context(), s.caller(w, r), key, version)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicObject(obj, t.cohort))
}

// purge is DELETE …?purge[&version=VERSION]: a manager removes one version,
// or every version of a file, for good (refused under a hold).
func (s *Server) purge(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.cfg.Backend.Purge(r.Context(), s.caller(w, r), key, r.URL.Query().Get("version")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request) {
	holds, err := s.cfg.Backend.Holds(r.Context(), s.caller(w, r), r.PathValue("cohort"))
	if err != nil {
		writeError(w, err)
		return
	}
	if holds == nil {
		holds = []wire.Hold{}
	}
	httpx.WriteJSON(w, http.StatusOK, holds)
}

// placeHold is POST /api/v1/holds/{cohort} with {"path": …, "reason": …}.
func (s *Server) placeHold(w http.ResponseWriter, r *http.Request) {
	var req wire.PlaceHold
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Cohort = r.PathValue("cohort")
	h, err := s.cfg.Backend.PlaceHold(r.Context(), s.caller(w, r), req)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, h)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("hold"), 10, 64)
	if err != nil {
		writeError(w, errorf(depot.CodeNotFound, "no such hold"))
		return
	}
	if err := s.cfg.Backend.ReleaseHold(r.Context(), s.caller(w, r), r.PathValue("cohort"), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
