package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// runLocks allows one run per (agent, service) in this process; a lock
// file (flock) extends that to other processes on the same machine.
type runLocks struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (l *runLocks) acquire(dir, agent, service string) (release func(), err error) {
	key := agent + "/" + service
	l.mu.Lock()
	if l.busy == nil {
		l.busy = map[string]bool{}
	}
	if l.busy[key] {
		l.mu.Unlock()
		return nil, inProgress(service, agent)
	}
	l.busy[key] = true
	l.mu.Unlock()
	free := func() {
		l.mu.Lock()
		delete(l.busy, key)
		l.mu.Unlock()
	}
	if dir == "" {
		return free, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		free()
		return nil, &Error{Code: CodeInternal, Message: "could not create the provisioner's lock directory"}
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("provision-%s-%s.lock", agent, service)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		free()
		return nil, &Error{Code: CodeInternal, Message: "could not open the provisioner's lock file"}
	}
	if !tryLockFile(f) {
		f.Close()
		free()
		return nil, inProgress(service, agent)
	}
	return func() {
		unlockFile(f)
		f.Close()
		free()
	}, nil
}

func inProgress(service, agent string) error {
	return &Error{Code: CodeInProgress, Message: fmt.Sprintf("%s is already being provisioned for %s", service, agent),
		Hint: "wait for the other run to finish"}
}
