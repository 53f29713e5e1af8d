// Package mux multiplexes streams, UDP sockets, listeners and one-shot
// requests over a link (docs/protocol.md §7–§9). The same Session serves
// both ends: the host opens streams; the device, given a Handler, serves
// them and pushes accepted connections.
//
// Concurrency: one mutex per Session guards the stream table, every
// stream's buffers and credits, and the outgoing control queue. Blocked
// Read/Write/Accept calls wait on capacity-1 notify channels, so deadlines
// and session failures wake them. The link calls Fill, Deliver, Up and Down
// from its loop goroutine; none of them block. Handler methods run in their
// own goroutines.
package mux

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/uartproxy/uartproxy/internal/message"
)

// Errors returned by sessions and streams.
var (
	ErrSessionClosed = errors.New("mux: session closed")
	// ErrNotConnected is returned by opens and requests while no link
	// session is up; it matches syscall.ENETDOWN with errors.Is.
	ErrNotConnected error = notConnected{}
	ErrStreamClosed       = errors.New("mux: stream closed")
	ErrWriteClosed        = errors.New("mux: write after CloseWrite")
	ErrUnsupported        = errors.New("mux: not supported by this side")
	ErrTooLarge           = errors.New("mux: datagram larger than the link can carry")
	// ErrTimeout is returned when a deadline passes; it is a net.Error
	// whose Timeout() is true.
	ErrTimeout = os.ErrDeadlineExceeded
)

// ResetError is a stream ended by a RESET from the peer, or an OPEN or
// REQUEST the peer refused.
type ResetError struct {
	Code   message.Code
	Reason string
	Remote bool // true when the peer sent it
}

func (e *ResetError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by device"
	}
	if e.Reason != "" {
		return fmt.Sprintf("stream reset %s: %v: %s", who, e.Code, e.Reason)
	}
	return fmt.Sprintf("stream reset %s: %v", who, e.Code)
}

// Is lets callers that know only the standard library classify a refused
// OPEN the way they classify a failed dial: errors.Is(err,
// syscall.ECONNREFUSED) and so on. Code dns matches nothing here; callers
// test CodeOf(err) == message.CodeDNS or treat it as unreachable.
func (e *ResetError) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	if !ok {
		return false
	}
	switch e.Code {
	case message.CodeRefused:
		return errno == syscall.ECONNREFUSED
	case message.CodeUnreachable:
		return errno == syscall.EHOSTUNREACH
	case message.CodeTimeout:
		return errno == syscall.ETIMEDOUT
	case message.CodeDenied:
		return errno == syscall.EACCES
	case message.CodeLimit, message.CodeNoMemory:
		return errno == syscall.EAGAIN
	case message.CodeReset:
		return errno == syscall.ECONNRESET
	case message.CodeInUse:
		return errno == syscall.EADDRINUSE
	}
	return false
}

// Timeout reports whether the peer gave up on a timeout.
func (e *ResetError) Timeout() bool   { return e.Code == message.CodeTimeout }
func (e *ResetError) Temporary() bool { return e.Code == message.CodeLimit }

// LinkError is what every stream of a session gets when the link session
// ends (peer restart, dead link, closed port).
type LinkError struct{ Err error }

func (e *LinkError) Error() string { return "link session ended: " + e.Err.Error() }
func (e *LinkError) Unwrap() error { return e.Err }

// Is makes a stream that lost its link session match syscall.ENETRESET.
func (e *LinkError) Is(target error) bool { return target == syscall.ENETRESET }

type notConnected struct{}

func (notConnected) Error() string        { return "mux: device not connected (no link session)" }
func (notConnected) Is(target error) bool { return target == syscall.ENETDOWN }

// CodeOf returns the protocol code that best describes err, for RESETs and
// metrics.
func CodeOf(err error) message.Code {
	var re *ResetError
	switch {
	case err == nil:
		return message.CodeOK
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, ErrTimeout):
		return message.CodeTimeout
	}
	return message.CodeInternal
}

// tuning (not protocol)
const (
	maxCtrlQueue     = 4096 // control messages waiting to be sent
	maxPendingReqs   = 64   // our own requests in flight
	sidParityHost    = 1    // host-opened ids are odd (docs/protocol.md §8.1)
	maxDatagram      = 65507
	creditBatchRatio = 4 // return credit once window/4 has been consumed
)
