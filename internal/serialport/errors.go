package serialport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"go.bug.st/serial"
)

var (
	// ErrClosed is returned by Read and Write once Close has been called.
	ErrClosed = errors.New("serial port closed")
	// ErrDisconnected is returned by Read and Write when the device went away
	// (a USB adapter unplugged, the far end of a pty closed).
	ErrDisconnected = errors.New("serial device disconnected")
)

// Hints that openError appends: what the user can do about the error.
const (
	hintPermission = "add your user to the dialout group: sudo usermod -aG dialout $USER, then log in again"
	hintNotFound   = "is the adapter plugged in? see `uartproxy ports`"
	hintBusy       = "is another program holding the port?"
	hintNotTTY     = "not a serial device; see `uartproxy ports`"
)

// openError describes a failure to open path, with a hint when there is one.
// The result wraps a syscall.Errno where one is known, so errors.Is works with
// fs.ErrNotExist and fs.ErrPermission.
func openError(path string, err error) error {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		switch pe.Code() {
		case serial.PortBusy:
			err = syscall.EBUSY
		case serial.PermissionDenied:
			err = syscall.EACCES
		case serial.PortNotFound:
			err = syscall.ENOENT
		}
	}
	hint := ""
	switch {
	case errors.Is(err, fs.ErrPermission):
		hint = hintPermission
	case errors.Is(err, fs.ErrNotExist):
		hint = hintNotFound
	case errors.Is(err, syscall.EBUSY):
		hint = hintBusy
	case errors.Is(err, syscall.ENOTTY):
		hint = hintNotTTY
	}
	if hint == "" {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fmt.Errorf("open %s: %w (%s)", path, err, hint)
}

// ioError turns an error from the library into ErrClosed, ErrDisconnected or
// a *os.PathError.
func (p *Port) ioError(op string, err error) error {
	if p.closed.Load() {
		return ErrClosed
	}
	var pe *serial.PortError
	if (errors.As(err, &pe) && pe.Code() == serial.PortClosed) || errors.Is(err, syscall.EIO) {
		// The library reports a read of zero bytes (hang-up) as PortClosed.
		return fmt.Errorf("%s %s: %w (was the adapter unplugged?)", op, p.path, ErrDisconnected)
	}
	return &os.PathError{Op: op, Path: p.path, Err: err}
}
