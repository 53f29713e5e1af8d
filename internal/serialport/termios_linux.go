package serialport

import (
	"errors"

	"golang.org/x/sys/unix"
)

// control is a second descriptor of the device, through which Open sets what
// go.bug.st/serial cannot. It is opened before the library's descriptor,
// because the library takes the device with TIOCEXCL (root ignores that).
type control struct{ fd int }

// openControl opens path and checks that it is a terminal, so that Open can
// report a missing device or a plain file by its errno.
func openControl(path string) (control, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return control{-1}, err
	}
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return control{-1}, err
	}
	return control{fd}, nil
}

// setRTSCTS sets or clears CRTSCTS on the device and reports whether it is
// set afterwards. A device that has no termios or refuses the flag is not
// an error: ok is then false.
func (c control) setRTSCTS(on bool) (ok bool, err error) {
	t, err := unix.IoctlGetTermios(c.fd, unix.TCGETS)
	if err != nil {
		return false, unsupported(err)
	}
	if on {
		t.Cflag |= unix.CRTSCTS
	} else {
		t.Cflag &^= unix.CRTSCTS
	}
	if err := unix.IoctlSetTermios(c.fd, unix.TCSETS, t); err != nil {
		return false, unsupported(err)
	}
	if t, err = unix.IoctlGetTermios(c.fd, unix.TCGETS); err != nil {
		return false, unsupported(err)
	}
	return t.Cflag&unix.CRTSCTS != 0, nil
}

func (c control) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
	}
}

// unsupported returns nil for the errors that mean "this device cannot do
// that", and err otherwise.
func unsupported(err error) error {
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}
