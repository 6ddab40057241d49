package web

import "sync"

// resumeTable remembers, per user and path, the upload session of an SFTP
// transfer that has not been committed, so that a client that comes back
// (reput, rclone's resume) continues it: SFTP names files, not sessions.
// It holds only session IDs, in memory: after a restart of this web
// process a cut transfer starts again from the beginning (its session
// expires in services). With several web processes a client must come back
// to the same one (sticky load balancing) to resume.
type resumeTable struct {
	mu  sync.Mutex
	ids map[resumeKey]string
}

type resumeKey struct{ user, key string }

// maxResumes bounds the table; when it is full it starts again empty (the
// sessions stay in services until they expire).
const maxResumes = 10000

func newResumeTable() *resumeTable { return &resumeTable{ids: map[resumeKey]string{}} }

func (t *resumeTable) get(user, key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.ids[resumeKey{user, key}]
	return id, ok
}

func (t *resumeTable) put(user, key, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) >= maxResumes {
		clear(t.ids)
	}
	t.ids[resumeKey{user, key}] = id
}

func (t *resumeTable) forget(user, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.ids, resumeKey{user, key})
}
