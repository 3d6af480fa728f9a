// Package sdnotifytest stands in for systemd's side of the notify
// protocol in tests: a unixgram socket that a service started with
// NOTIFY_SOCKET pointing at it sends its READY=1, STOPPING=1 and
// WATCHDOG=1 to, read back one datagram at a time in order.
package sdnotifytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Socket is the listening end.
type Socket struct {
	Path string
	conn *net.UnixConn
}

// Listen binds a fresh socket under a short temporary directory (a socket
// path has at most 107 bytes, and t.TempDir names can be longer); both go
// at cleanup. A path socket, unlike an abstract one, is reachable from
// every network namespace, so a service run inside a test namespace finds
// it.
func Listen(t testing.TB) *Socket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Socket{Path: path, conn: conn}
}

// Env is the environment a service gets from systemd: NOTIFY_SOCKET and,
// when watchdog > 0, WATCHDOG_USEC (no WATCHDOG_PID: the test does not
// know the service's PID before it starts).
func (s *Socket) Env(watchdog time.Duration) []string {
	env := []string{"NOTIFY_SOCKET=" + s.Path}
	if watchdog > 0 {
		env = append(env, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	}
	return env
}

// ErrTimeout is returned by Next when nothing arrived in time.
var ErrTimeout = errors.New("no notification in time")

// Next returns the next datagram's text, waiting up to timeout. The
// timeout only bounds a failing test: a passing one returns as soon as
// the datagram is there.
func (s *Socket) Next(timeout time.Duration) (string, error) {
	buf := make([]byte, 4096)
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := s.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", ErrTimeout
		}
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// Await reads until a datagram equal to want arrives and returns what
// came before it, or fails after timeout (or when abort is closed, e.g.
// the service exited) with what was seen.
func (s *Socket) Await(want string, timeout time.Duration, abort <-chan struct{}) (before []string, err error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return before, fmt.Errorf("no %s within %v; got %q", want, timeout, before)
		}
		// Short reads, so an exited service is noticed without waiting
		// out the whole timeout.
		msg, err := s.Next(min(left, 200*time.Millisecond))
		switch {
		case errors.Is(err, ErrTimeout):
			select {
			case <-abort:
				return before, fmt.Errorf("service exited before %s; got %q", want, before)
			default:
			}
			continue
		case err != nil:
			return before, err
		}
		if msg == want {
			return before, nil
		}
		before = append(before, msg)
	}
}
