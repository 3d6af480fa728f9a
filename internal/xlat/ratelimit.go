package xlat

import (
	"sync"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// ErrorLimit limits the ICMP errors an instance originates, one bucket
// for all its Translators: nat64.toml's icmp_error_rate is the instance's,
// whichever worker a flood lands on. Errors are the rare path, so a mutex
// costs nothing a normal packet pays; in a flood the workers meet on it
// only for packets they drop anyway.
type ErrorLimit struct {
	mu sync.Mutex
	b  errLimiter
}

// NewErrorLimit makes a full bucket of rate errors per second in bursts of
// burst (values below 1 take the defaults).
func NewErrorLimit(rate, burst int) *ErrorLimit {
	l := &ErrorLimit{}
	l.b.init(rate, burst)
	return l
}

func (l *ErrorLimit) allow(now int64) bool {
	l.mu.Lock()
	ok := l.b.allow(now)
	l.mu.Unlock()
	return ok
}

// errLimiter is a token bucket over the ICMP errors originated (RFC 4443 §2.4(f), RFC 1812 §4.3.2.8; the defaults, and why,
// are at nat64.DefaultICMPErrorRate). Credit is kept in nanoseconds of the
// monotonic clock Process is given, so refilling is a subtraction and a
// min, with no division on the packet path and no rounding drift: a token
// costs interval ns, and the bucket holds at most depth = burst * interval.
type errLimiter struct {
	interval int64 // ns per token: 1e9 / rate
	depth    int64 // ns of credit a full bucket holds
	credit   int64 // ns of credit now, 0..depth
	last     int64 // when credit was last brought up to date
}

// init sets the bucket for rate errors per second with bursts of burst
// (values below 1 take the defaults), and fills it.
func (b *errLimiter) init(rate, burst int) {
	if rate <= 0 {
		rate = nat64.DefaultICMPErrorRate
	}
	if burst <= 0 {
		burst = nat64.DefaultICMPErrorBurst
	}
	b.interval = max(int64(time.Second)/int64(rate), 1)
	b.depth = b.interval * int64(burst)
	b.credit = b.depth
	b.last = 0
}

// allow takes a token at time now, if there is one. A clock that stands
// still or goes back adds no credit.
func (b *errLimiter) allow(now int64) bool {
	if d := now - b.last; d > 0 {
		if d >= b.depth-b.credit {
			b.credit = b.depth
		} else {
			b.credit += d
		}
		b.last = now
	}
	if b.credit < b.interval {
		return false
	}
	b.credit -= b.interval
	return true
}
