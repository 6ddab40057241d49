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
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	h, err := s.cfg.Backend.History(r.Context(), c, key)
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
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	obj, err := s.cfg.Backend.Undelete(r.Context(), c, key)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicObject(obj, t.cohort))
}

// restore is POST …?restore=VERSION: a manager makes an old version the
// current one.
func (s *Server) restore(w http.ResponseWriter, r *http.Request, t target) {
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	version := r.URL.Query().Get("restore")
	if version == "" {
		s.refuse(r.Context(), c, w, errorf(depot.CodeInvalid, "restore needs a version: ?restore=VERSION"))
		return
	}
	obj, err := s.cfg.Backend.RestoreVersion(r.Context(), c, key, version)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicObject(obj, t.cohort))
}

// purge is DELETE …?purge[&version=VERSION]: a manager removes one version,
// or every version of a file, for good (refused under a hold).
func (s *Server) purge(w http.ResponseWriter, r *http.Request, t target) {
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	if err := s.cfg.Backend.Purge(r.Context(), c, key, r.URL.Query().Get("version")); err != nil {
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
	c := s.caller(w, r)
	var req wire.PlaceHold
	if !s.decodeJSON(w, r, c, &req) {
		return
	}
	req.Cohort = r.PathValue("cohort")
	h, err := s.cfg.Backend.PlaceHold(r.Context(), c, req)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, h)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) {
	c := s.caller(w, r)
	id, err := strconv.ParseInt(r.PathValue("hold"), 10, 64)
	if err != nil {
		s.refuse(r.Context(), c, w, errorf(depot.CodeNotFound, "no such hold"))
		return
	}
	if err := s.cfg.Backend.ReleaseHold(r.Context(), c, r.PathValue("cohort"), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
