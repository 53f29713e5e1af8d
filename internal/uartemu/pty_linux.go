package uartemu

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openRawPTY opens a pty pair with the slave in raw mode. The master comes
// back non-blocking and registered with the runtime poller, so Close unblocks
// a pending Read or Write on it.
func openRawPTY() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// creack/pty calls Fd on the master, which leaves it in blocking mode:
	// a Read blocked on it would survive Close. Re-open it as pollable.
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("dup master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("master non-blocking: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	if err := makeRaw(s); err != nil {
		return nil, nil, fmt.Errorf("raw mode on %s: %w", s.Name(), err)
	}
	return master, s, nil
}

// makeRaw does what cfmakeraw(3) does, with VMIN=1 VTIME=0: no echo, no
// line editing or signals, no CR/NL translation, 8 data bits, no parity.
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ioErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP |
			unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return ioErr
}

// ptyBaud returns the output speed set on the pty, in bits per second;
// termios2 reports it numerically, non-standard rates included.
func ptyBaud(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var speed int
	var ierr error
	err = rc.Control(func(fd uintptr) {
		var t *unix.Termios
		t, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS2)
		if ierr == nil {
			speed = int(t.Ospeed)
		}
	})
	if err != nil {
		return 0, err
	}
	return speed, ierr
}
