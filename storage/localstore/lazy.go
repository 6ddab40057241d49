package localstore

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"depot/storage"
)

// A lazy write (storage.Staging.Lazy) leaves its bytes in the page cache of
// the machine that wrote them: a crash of the process keeps them, a crash
// of the machine may not. The staging area's State then names the machine
// and its boot, and a later call on that machine after a restart of it
// reports storage.ErrStagingLost. Another machine (a NAS shared by several
// services hosts) trusts the bytes: the writer's close delivered them to
// the file server, and its own next fsync makes them durable there.

// identity is the machine and boot a lazy write is recorded against; the
// zero value (unknown) turns lazy writes off.
type identity struct {
	Machine string `json:"machine"`
	Boot    string `json:"boot"`
}

// hostIdentity reads this machine's ID (/etc/machine-id, else the host
// name) and boot ID (Linux).
func hostIdentity() identity {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return identity{}
	}
	machine, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(strings.TrimSpace(string(machine))) == 0 {
		h, herr := os.Hostname()
		if herr != nil {
			return identity{}
		}
		machine = []byte(h)
	}
	return identity{Machine: strings.TrimSpace(string(machine)), Boot: strings.TrimSpace(string(boot))}
}

// stagingState is Staging.State of a local staging area: empty when every
// staged byte is durable.
type stagingState struct {
	Unsynced *identity `json:"unsynced,omitempty"` // who holds staged bytes not yet on disk
}

// checkLazy returns storage.ErrStagingLost when st holds bytes written
// lazily on this machine before it restarted.
func (d *Driver) checkLazy(st *storage.Staging) error {
	if len(st.State) == 0 {
		return nil
	}
	var s stagingState
	if err := json.Unmarshal(st.State, &s); err != nil {
		return fmt.Errorf("localstore: staging state: %w", err)
	}
	if u := s.Unsynced; u != nil && u.Machine == d.host.Machine && u.Boot != d.host.Boot {
		return fmt.Errorf("localstore: staging written before boot %s: %w", d.host.Boot, storage.ErrStagingLost)
	}
	return nil
}

// lazyState is the State of a staging area after a lazy write on this
// machine; nil when lazy writes are off (the write is made durable).
func (d *Driver) lazyState() []byte {
	if d.host.Boot == "" {
		return nil
	}
	b, _ := json.Marshal(stagingState{Unsynced: &d.host})
	return b
}

// flushes are the background flushes of lazily written staging areas: while
// the next chunk arrives, the device writes the last one, instead of every
// byte at the request's end (measured: without them a 1 GiB stream waited
// at its end for the host to write what it had only cached).
type flushes struct {
	sync    func(*os.File) error // (*os.File).Sync; tests make it fail
	mu      sync.Mutex
	running map[string]chan struct{} // staging ID → closed when its flush ends
	failed  map[string]error
	wg      sync.WaitGroup
}

// flushBehind starts making staging area id (root-relative name) durable in
// the background, unless a flush of it runs already.
func (d *Driver) flushBehind(id, name string) {
	f, err := d.root.OpenFile(name, os.O_WRONLY, 0) // not under fl.mu: other uploads' flushes wait for it
	if err != nil {
		return // the request's last chunk syncs anyway
	}
	fl := &d.flushes
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.running[id] != nil {
		f.Close()
		return
	}
	if fl.running == nil {
		fl.running, fl.failed = map[string]chan struct{}{}, map[string]error{}
	}
	done := make(chan struct{})
	fl.running[id] = done
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		syncFile := fl.sync
		if syncFile == nil {
			syncFile = (*os.File).Sync
		}
		err := syncFile(f)
		f.Close()
		fl.mu.Lock()
		delete(fl.running, id)
		if err != nil {
			fl.failed[id] = scrub(err)
		}
		fl.mu.Unlock()
		close(done)
	}()
}

// flushFailed returns storage.ErrStagingLost when a background flush of
// staging area id failed (Linux reports a failed writeback to one fsync
// only, so a later fsync could succeed over lost bytes). With wait, it
// first waits for a flush in progress: before a durable point.
func (d *Driver) flushFailed(id string, wait bool) error {
	fl := &d.flushes
	fl.mu.Lock()
	done := fl.running[id]
	fl.mu.Unlock()
	if wait && done != nil {
		<-done
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err := fl.failed[id]; err != nil {
		delete(fl.failed, id)
		return fmt.Errorf("localstore: background sync of staging: %w: %w", err, storage.ErrStagingLost)
	}
	return nil
}

// forget drops the failure of a background flush of staging area id, which
// is being discarded.
func (fl *flushes) forget(id string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	delete(fl.failed, id)
}
