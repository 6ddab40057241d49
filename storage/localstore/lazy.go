package localstore

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

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
