package function

import "io"

// SetProcess replaces what ColdStart writes to and how it exits, and forgets the active
// Handler; the returned function puts everything back.
func SetProcess(w io.Writer, exitFn func(int)) (restore func()) {
	oldOut, oldExit, oldActive := stdout, exit, active.Load()
	stdout, exit = w, exitFn
	active.Store(nil)
	return func() {
		stdout, exit = oldOut, oldExit
		if h := active.Swap(oldActive); h != nil && h != oldActive {
			h.Close()
		}
	}
}

// Active is the Handler VerifyObject serves.
func Active() *Handler { return active.Load() }
