package repl

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeoutError is returned when the board does not answer in time. It
// implements net.Error and matches ErrNoAnswer.
type TimeoutError struct {
	// Wait names what was awaited, e.g. "the raw REPL prompt".
	Wait string
	// After is how long.
	After time.Duration
	// Got is what the board sent meanwhile that did not match, at most
	// 64 bytes of it.
	Got []byte
}

func (e *TimeoutError) Error() string {
	s := fmt.Sprintf("%v: waited %v for %s", ErrNoAnswer, e.After, e.Wait)
	if len(e.Got) > 0 {
		s += fmt.Sprintf(" (it sent %q)", e.Got)
	}
	return s
}

// Timeout reports true: this is a timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports false (net.Error).
func (e *TimeoutError) Temporary() bool { return false }

// Is makes errors.Is(err, ErrNoAnswer) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrNoAnswer }

// RemoteError is an exception that code run on the board raised: its
// traceback, parsed.
type RemoteError struct {
	// Exception is the exception's type, e.g. "OSError".
	Exception string
	// Message is the rest of the traceback's last line, e.g.
	// "[Errno 28] ENOSPC".
	Message string
	// Errno is the OSError number, or 0. MicroPython boards number errors
	// like Linux does (ENOSPC 28); a name in the message wins over it.
	Errno int
	// Name is the errno name, e.g. "ENOSPC", or "".
	Name string
	// Traceback is the whole error output, with "\r\n" made "\n".
	Traceback string
}

// errnoNames are MicroPython's errno numbers (py/mperrno.h) that file
// operations raise.
//
// protocol: must match MicroPython's py/mperrno.h.
var errnoNames = map[int]string{
	1: "EPERM", 2: "ENOENT", 5: "EIO", 9: "EBADF", 12: "ENOMEM", 13: "EACCES",
	17: "EEXIST", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
	27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 36: "ENAMETOOLONG", 39: "ENOTEMPTY",
}

// errnoHints say in words what an errno means for the user.
var errnoHints = map[string]string{
	"ENOSPC":       ErrFilesystemFull.Error(),
	"EROFS":        "the board's filesystem is read-only",
	"EIO":          "the board could not read or write its filesystem (I/O error)",
	"ENOMEM":       "the board ran out of memory",
	"ENOENT":       "no such file or directory on the board",
	"EEXIST":       "the file already exists on the board",
	"EISDIR":       "that is a directory on the board",
	"ENOTDIR":      "a part of that path is a file on the board, not a directory",
	"ENODEV":       "the board has no filesystem there",
	"EACCES":       "the board refused access to that file",
	"EFBIG":        "the file is too large for the board's filesystem",
	"ENAMETOOLONG": "the file name is too long for the board's filesystem",
}

func (e *RemoteError) Error() string {
	last := e.Exception
	if e.Message != "" {
		last += ": " + e.Message
	}
	if hint := e.hint(); hint != "" {
		return hint + " (" + last + ")"
	}
	return "the board raised " + last
}

func (e *RemoteError) hint() string {
	if e.Exception == "MemoryError" {
		return "the board ran out of memory"
	}
	return errnoHints[e.Name]
}

// Is makes errors.Is(err, ErrFilesystemFull) true for ENOSPC.
func (e *RemoteError) Is(target error) bool {
	return target == ErrFilesystemFull && e.Name == "ENOSPC"
}

// parseTraceback turns the error output of a snippet into a *RemoteError.
// Its last non-empty line is "Type: message" or just "Type".
func parseTraceback(b []byte) *RemoteError {
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	e := &RemoteError{Traceback: text, Exception: "exception"}
	lines := strings.Split(strings.TrimRight(text, "\n \t\r"), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return e
	}
	name, msg, _ := strings.Cut(last, ":")
	e.Exception, e.Message = strings.TrimSpace(name), strings.TrimSpace(msg)
	if e.Exception == "" {
		e.Exception = "exception"
	}
	if e.Exception == "OSError" {
		e.Errno, e.Name = parseErrno(e.Message)
	}
	return e
}

// parseErrno reads "[Errno 28] ENOSPC", "28" or "(28, 'text')".
func parseErrno(msg string) (int, string) {
	s := strings.TrimSpace(msg)
	var name string
	if rest, ok := strings.CutPrefix(s, "[Errno "); ok {
		num, after, _ := strings.Cut(rest, "]")
		s = num
		if f := strings.Fields(after); len(f) > 0 && strings.HasPrefix(f[0], "E") {
			name = strings.TrimRight(f[0], ":,")
		}
	} else if rest, ok := strings.CutPrefix(s, "("); ok {
		s, _, _ = strings.Cut(rest, ",")
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, name
	}
	if name == "" {
		name = errnoNames[n]
	}
	return n, name
}

// excerpt returns at most n bytes of b, from its end, for error messages.
func excerpt(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.Clone(b)
}
