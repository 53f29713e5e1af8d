package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// errnoLike matches one errno with errors.Is, as mux's errors do.
type errnoLike struct{ errno syscall.Errno }

func (e errnoLike) Error() string        { return "device said: " + e.errno.Error() }
func (e errnoLike) Is(target error) bool { return target == e.errno }
func opErr(err error) error              { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
func wrapped(err error) error            { return fmt.Errorf("open: %w", err) }
func timeoutErr() error                  { return &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded} }
func sysErr(e syscall.Errno) error       { return opErr(os.NewSyscallError("connect", e)) }
func dnsErr() error {
	return opErr(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true})
}
func dnsTimeout() error { return &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true} }

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{sysErr(syscall.ECONNREFUSED), ReasonRefused},
		{wrapped(opErr(errnoLike{syscall.ECONNREFUSED})), ReasonRefused},
		{sysErr(syscall.EHOSTUNREACH), ReasonUnreachable},
		{sysErr(syscall.ENETUNREACH), ReasonUnreachable},
		{dnsErr(), ReasonUnreachable},
		{dnsTimeout(), ReasonUnreachable},
		{sysErr(syscall.ETIMEDOUT), ReasonTimeout},
		{timeoutErr(), ReasonTimeout},
		{wrapped(context.DeadlineExceeded), ReasonTimeout},
		{opErr(errnoLike{syscall.ENETDOWN}), ReasonNoDevice},
		{wrapped(errnoLike{syscall.ENETRESET}), ReasonNoDevice},
		{opErr(errnoLike{syscall.EAGAIN}), ReasonLimit},
		{sysErr(syscall.EACCES), ReasonDenied},
		{errnoLike{syscall.EACCES}, ReasonDenied},
		{errors.New("something else"), ReasonOther},
		{opErr(errnoLike{syscall.EADDRINUSE}), ReasonOther},
		{context.Canceled, ReasonOther},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	for i, r := range reasons {
		if reasonIndex(r) != i {
			t.Errorf("reasonIndex(%q) = %d", r, reasonIndex(r))
		}
	}
}

// TestClassifyRealDial: the host's own refused dial is classified too.
func TestClassifyRealDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	if got := classify(err); got != ReasonRefused {
		t.Fatalf("classify(%v) = %q", err, got)
	}
}

func TestWarnLimiter(t *testing.T) {
	l := warnLimiter{every: time.Hour}
	if !l.allow("a") || l.allow("a") || !l.allow("b") {
		t.Fatal("want one warning per reason")
	}
	l = warnLimiter{every: time.Nanosecond}
	l.allow("a")
	time.Sleep(time.Millisecond)
	if !l.allow("a") {
		t.Fatal("want another warning after the interval")
	}
}
