package forward

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Reasons for failing to open the other side of a forward, the keys of
// Stats.Failed.
const (
	ReasonRefused     = "refused"     // the destination refused the connection
	ReasonUnreachable = "unreachable" // no route, or the name did not resolve
	ReasonTimeout     = "timeout"     // no answer within ConnectTimeout
	ReasonNoDevice    = "no_device"   // the ESP32 is not connected, or the link was lost
	ReasonLimit       = "limit"       // the ESP32 has no free stream
	ReasonDenied      = "denied"      // the ESP32 or the OS did not allow it
	ReasonOther       = "other"
)

var reasons = [...]string{ReasonRefused, ReasonUnreachable, ReasonTimeout, ReasonNoDevice, ReasonLimit, ReasonDenied, ReasonOther}

// reasonIndex returns the index of r in reasons.
func reasonIndex(r string) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return len(reasons) - 1
}

// classify names why opening the other side failed. It knows only the
// standard library: the device's errors match syscall errnos with
// errors.Is (see mux.ResetError), as the host's own dial errors do.
func classify(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnsErr):
		return ReasonUnreachable
	case errors.Is(err, syscall.ENETDOWN), errors.Is(err, syscall.ENETRESET):
		return ReasonNoDevice
	// Before the timeout case: syscall.EAGAIN says Timeout() is true.
	case errors.Is(err, syscall.EAGAIN):
		return ReasonLimit
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return ReasonDenied
	case errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	}
	return ReasonOther
}

// warnLimiter lets one warning per reason through every so often; the
// rest go to debug, so a dead destination does not flood the log.
type warnLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
}

// allow reports whether a warning for reason may be logged now.
func (l *warnLimiter) allow(reason string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = make(map[string]time.Time)
	}
	if t, ok := l.last[reason]; ok && now.Sub(t) < l.every {
		return false
	}
	l.last[reason] = now
	return true
}
