package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Inherited is a child's side of Run: the listening sockets the parent handed over and the pipe
// on which the child reports. The methods of a nil *Inherited (a process not started by Run)
// hand over nothing.
type Inherited struct {
	mu        sync.Mutex
	listeners map[string]net.Listener
	control   *os.File
}

// ErrNotSupervised is AskRestart's error in a process Run did not start: it must exit with
// memstats.ExitRestart instead.
var ErrNotSupervised = errors.New("supervisor: not started by a supervisor")

// FromEnv returns what the supervisor handed this process, as environ describes it
// (EnvListenFDs, EnvControlFD), or nil when it describes nothing. The descriptors are closed on
// exec, so nothing this process starts inherits them. An error means environ names descriptors
// that are not what it says.
func FromEnv(environ []string) (*Inherited, error) {
	fds, control := lookup(environ, EnvListenFDs), lookup(environ, EnvControlFD)
	if fds == "" && control == "" {
		return nil, nil
	}
	in := &Inherited{listeners: map[string]net.Listener{}}
	fail := func(err error) (*Inherited, error) {
		in.Close()
		return nil, err
	}
	if fds != "" {
		for item := range strings.SplitSeq(fds, ",") {
			name, n, ok := strings.Cut(item, ":")
			fd, err := strconv.Atoi(n)
			if !ok || err != nil || fd < 3 {
				return fail(fmt.Errorf("supervisor: %s=%q: want name:fd,...", EnvListenFDs, fds))
			}
			syscall.CloseOnExec(fd)
			f := os.NewFile(uintptr(fd), name)
			l, err := net.FileListener(f)
			f.Close() // l holds its own descriptor
			if err != nil {
				return fail(fmt.Errorf("supervisor: inherited listener %s (fd %d): %w", name, fd, err))
			}
			in.listeners[name] = l
		}
	}
	if control != "" {
		fd, err := strconv.Atoi(control)
		if err != nil || fd < 3 {
			return fail(fmt.Errorf("supervisor: %s=%q: want a descriptor", EnvControlFD, control))
		}
		syscall.CloseOnExec(fd)
		in.control = os.NewFile(uintptr(fd), "supervisor-control")
	}
	return in, nil
}

func lookup(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if rest, ok := strings.CutPrefix(kv, key+"="); ok {
			v = rest
		}
	}
	return v
}

// Listener returns the inherited listener called name, once: the caller owns it. It returns nil
// when there is none (or it was taken): the caller listens itself.
func (in *Inherited) Listener(name string) net.Listener {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	l := in.listeners[name]
	delete(in.listeners, name)
	return l
}

// Ready tells the parent this process serves: the parent may now drain the one it replaces.
func (in *Inherited) Ready() error { return in.send(msgReady) }

// AskRestart asks the parent to replace this process: it starts the next one and, once that
// one is ready, sends this one SIGTERM. ErrNotSupervised without a parent to ask.
func (in *Inherited) AskRestart() error { return in.send(msgRestart) }

func (in *Inherited) send(msg string) error {
	if in == nil || in.control == nil {
		return ErrNotSupervised
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	_, err := in.control.WriteString(msg + "\n")
	return err
}

// Close closes the control pipe and the listeners nobody took.
func (in *Inherited) Close() error {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []error
	for name, l := range in.listeners {
		errs = append(errs, l.Close())
		delete(in.listeners, name)
	}
	if in.control != nil {
		errs = append(errs, in.control.Close())
		in.control = nil
	}
	return errors.Join(errs...)
}
