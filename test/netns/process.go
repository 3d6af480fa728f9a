package netns

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a long-running program started inside a namespace.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu  sync.Mutex
	out bytes.Buffer
}

// Write collects the process's stdout and stderr.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns what the process printed so far (stdout and stderr).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// PID is the process's id (`ip netns exec` execs the program in place).
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process by PID, waits up to a grace period,
// then SIGKILLs it. It returns the exit error (nil or a signal exit).
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Start starts a long-running program inside the namespace and registers
// Stop with t.Cleanup. Its output is collected (Process.Output) and, if the
// test fails, logged.
func (ns *NS) Start(args ...string) *Process {
	ns.t.Helper()
	p := &Process{done: make(chan struct{})}
	p.Cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	p.Cmd.Stdout = p
	p.Cmd.Stderr = p
	if err := p.Cmd.Start(); err != nil {
		ns.t.Fatalf("start in %s: %s: %v", ns.Name, strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	ns.t.Cleanup(func() {
		_ = p.Stop()
		if ns.t.Failed() {
			ns.t.Logf("output of %q in %s:\n%s", strings.Join(args, " "), ns.Name, p.Output())
		}
	})
	return p
}
