package localstore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"depot"
	"depot/storage"
)

// List returns up to limit objects whose keys start with prefix and sort
// strictly after after, in byte order of their keys; limit <= 0 means no
// limit. It walks only the directory implied by prefix, one directory at a
// time, and skips subtrees that lie wholly before after. Names starting with
// ".depot" (staging files, temporary files, the internal directory) and
// anything that is neither a regular file nor a directory are skipped.
func (d *Driver) List(ctx context.Context, prefix, after string, limit int) ([]storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := depot.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("localstore: %w", err)
	}
	w := &lister{d: d, ctx: ctx, prefix: prefix, after: after, limit: limit}
	dir, keyPrefix := ".", ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, keyPrefix = prefix[:i], prefix[:i+1]
	}
	if err := w.walk(dir, keyPrefix); err != nil && !errors.Is(err, errListFull) {
		return nil, err
	}
	return w.out, nil
}

var errListFull = errors.New("list full")

type lister struct {
	d      *Driver
	ctx    context.Context
	prefix string
	after  string
	limit  int
	out    []storage.ObjectInfo
}

// entry is a directory entry with the name it sorts by: a directory sorts as
// name+"/", because every key below it starts with that. Sorting siblings so
// gives byte order of full keys ("a.b" < "a/x" < "a0").
type entry struct {
	name  string
	isDir bool
	sort  string
}

// walk lists the root-relative directory dir, whose entries have keys
// keyPrefix+name.
func (w *lister) walk(dir, keyPrefix string) error {
	entries, err := w.d.readDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil // removed concurrently, or the prefix names no directory
		}
		return fail("list", err)
	}
	for _, e := range entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		full := keyPrefix + e.sort
		if e.isDir {
			if !w.mayContain(full) {
				continue
			}
			if err := w.walk(path.Join(dir, e.name), full); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(full, w.prefix) || full <= w.after {
			continue
		}
		info, err := w.d.stat(full)
		if err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				continue // deleted since readDir
			}
			return err
		}
		w.out = append(w.out, info)
		if w.limit > 0 && len(w.out) >= w.limit {
			return errListFull
		}
	}
	return nil
}

// mayContain reports whether the subtree whose keys all start with dirKey
// (ending in "/") can hold a key that matches prefix and sorts after after.
func (w *lister) mayContain(dirKey string) bool {
	if !strings.HasPrefix(dirKey, w.prefix) && !strings.HasPrefix(w.prefix, dirKey) {
		return false
	}
	// Every key below is > dirKey; all of them are <= after exactly when
	// after sorts past dirKey without lying inside the subtree.
	return !(w.after > dirKey && !strings.HasPrefix(w.after, dirKey))
}

// readDir returns the visible entries of dir sorted by entry.sort.
func (d *Driver) readDir(dir string) ([]entry, error) {
	f, err := d.root.Open(dir)
	if err != nil {
		return nil, err
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, depot.ReservedPrefix) {
			continue
		}
		switch {
		case de.IsDir():
			out = append(out, entry{name: name, isDir: true, sort: name + "/"})
		case de.Type().IsRegular():
			out = append(out, entry{name: name, sort: name})
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.sort, b.sort) })
	return out, nil
}
