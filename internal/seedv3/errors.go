package seedv3

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// RemoteError is a RESP {"ok": false, "error": Code, "detail": Detail}.
//
// Is lets callers that know only the standard library classify it as they
// classify a failed dial on the host: errors.Is(err, syscall.ECONNREFUSED)
// for a connect the destination refused, syscall.ETIMEDOUT for timeouts,
// syscall.ECONNRESET for invalid_sid (the socket is gone, typically after a
// reboot). The device reports errnos as MicroPython prints them ("[Errno
// 111] ECONNREFUSED"); names win over numbers, whose meaning differs
// between lwIP builds. lwIP on the ESP32 reports a connect refused by a
// RST as ECONNRESET or ECONNABORTED, so those match ECONNREFUSED for
// sock_connect.
type RemoteError struct {
	Op     string // Op is the operation that failed.
	Code   string // Code is the error code, such as "sock_connect_error".
	Detail string // Detail is the device's text, often an OSError; may be empty.
}

func (e *RemoteError) Error() string {
	s := "seedv3: " + e.Op + ": " + e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is matches the syscall.Errno that the code and detail describe.
func (e *RemoteError) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && errno != 0 && e.Errno() == errno
}

// Timeout reports whether the device gave up on a timeout.
func (e *RemoteError) Timeout() bool { return e.Errno() == syscall.ETIMEDOUT }

// Temporary reports false; it exists for net.Error.
func (e *RemoteError) Temporary() bool { return false }

// Errno returns the errno the error describes, or 0.
func (e *RemoteError) Errno() syscall.Errno {
	if e.Code == CodeInvalidSID {
		return syscall.ECONNRESET
	}
	errno := detailErrno(e.Detail)
	if e.Op == OpSockConnect && (errno == syscall.ECONNRESET || errno == syscall.ECONNABORTED) {
		return syscall.ECONNREFUSED
	}
	return errno
}

// errnoNames are the errno names MicroPython prints, with phrases that
// mean the same.
var errnoNames = []struct {
	words []string
	errno syscall.Errno
}{
	{[]string{"ECONNREFUSED", "REFUSED"}, syscall.ECONNREFUSED},
	{[]string{"ETIMEDOUT", "TIMED OUT", "TIMEOUT"}, syscall.ETIMEDOUT},
	{[]string{"EHOSTUNREACH", "HOST UNREACHABLE", "NO ROUTE"}, syscall.EHOSTUNREACH},
	{[]string{"ENETUNREACH", "NETWORK IS UNREACHABLE"}, syscall.ENETUNREACH},
	{[]string{"ECONNRESET", "CONNECTION RESET"}, syscall.ECONNRESET},
	{[]string{"ECONNABORTED"}, syscall.ECONNABORTED},
	{[]string{"ENOTCONN"}, syscall.ENOTCONN},
	{[]string{"EADDRINUSE", "ADDRESS ALREADY IN USE"}, syscall.EADDRINUSE},
	{[]string{"EAGAIN", "EWOULDBLOCK"}, syscall.EAGAIN},
	{[]string{"ENOMEM"}, syscall.ENOMEM},
}

// errnoNumbers are the numbers whose meaning is the same in lwIP, newlib
// and Linux.
var errnoNumbers = map[int]syscall.Errno{
	111: syscall.ECONNREFUSED,
	110: syscall.ETIMEDOUT, // Linux, lwIP
	116: syscall.ETIMEDOUT, // newlib (ESP-IDF)
	104: syscall.ECONNRESET,
	11:  syscall.EAGAIN,
	12:  syscall.ENOMEM,
}

var errnoNumber = regexp.MustCompile(`(?i)errno\s*(-?\d+)`)

// detailErrno reads an errno from a device's error text.
func detailErrno(detail string) syscall.Errno {
	if detail == "" {
		return 0
	}
	up := strings.ToUpper(detail)
	for _, n := range errnoNames {
		for _, w := range n.words {
			if strings.Contains(up, w) {
				return n.errno
			}
		}
	}
	if m := errnoNumber.FindStringSubmatch(detail); m != nil {
		if v, err := strconv.Atoi(m[1]); err == nil {
			return errnoNumbers[v]
		}
	}
	return 0
}

// DownError is returned when the device sent no RESP before the deadline
// (the seed client's "bridge_timeout"), or when the serial port failed. It
// matches syscall.ENETDOWN: the device is away, or the line is.
type DownError struct {
	Op     string // Op is the operation that got no answer.
	Reason string // Reason says why, such as "no RESP within 8s".
}

func (e *DownError) Error() string {
	return "seedv3: ESP32 not answering (" + CodeBridgeTimeout + "): " + e.Op + ": " + e.Reason
}

// Is makes a DownError match syscall.ENETDOWN.
func (e *DownError) Is(target error) bool { return target == syscall.ENETDOWN }

// Timeout reports false: the device being away is not a timeout of the
// operation (a proxy should say "no device", not "timed out").
func (e *DownError) Timeout() bool { return false }

// Temporary reports false; it exists for net.Error.
func (e *DownError) Temporary() bool { return false }

// ResetError fails the sockets of a device that rebooted (or that lost
// them otherwise). It matches syscall.ECONNRESET.
type ResetError struct {
	Reason string
}

func (e *ResetError) Error() string { return "seedv3: connection reset: " + e.Reason }

// Is makes a ResetError match syscall.ECONNRESET.
func (e *ResetError) Is(target error) bool { return target == syscall.ECONNRESET }

// Timeout reports false; it exists for net.Error.
func (e *ResetError) Timeout() bool { return false }

// Temporary reports false; it exists for net.Error.
func (e *ResetError) Temporary() bool { return false }

// isPollTimeout reports whether err is a device's "nothing arrived within
// timeout_ms" for a polled op (accept, recvfrom, recv): some firmware
// answers a timeout with an error rather than an empty result.
func isPollTimeout(err error) bool {
	re, ok := err.(*RemoteError)
	if !ok || re.Code == CodeInvalidSID {
		return false
	}
	switch re.Errno() {
	case syscall.ETIMEDOUT, syscall.EAGAIN:
		return true
	}
	return false
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToUpper(s), strings.ToUpper(sub))
}
