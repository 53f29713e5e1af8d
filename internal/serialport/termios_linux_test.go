package serialport

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestFlowControlOnPty checks that asking for RTS/CTS never fails Open on a
// pty, and that FlowControl reports what the device's termios really hold, as
// read through another descriptor.
func TestFlowControlOnPty(t *testing.T) {
	for _, want := range []bool{true, false} {
		master, path := openPty(t)
		p := openPort(t, Config{Path: path, Baud: 921600, FlowControl: want})

		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		set := tio.Cflag&unix.CRTSCTS != 0
		if set != p.FlowControl() {
			t.Errorf("FlowControl: %v, but CRTSCTS on the device is %v", p.FlowControl(), set)
		}
		if !want && set {
			t.Error("CRTSCTS set although flow control was not asked for")
		}
		t.Logf("asked for flow control: %v, got it: %v", want, p.FlowControl())

		// Data still flows with the flag set.
		if _, err := p.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		if got := readFull(t, master, 2); string(got) != "ok" {
			t.Errorf("master read %q, want %q", got, "ok")
		}
	}
}

// TestSetBaudKeepsFlowControl: switching rate (docs/protocol.md §5.7) must
// change the speed in the device's termios and leave CRTSCTS set.
func TestSetBaudKeepsFlowControl(t *testing.T) {
	master, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 921600, FlowControl: true})
	if err := p.SetBaud(115200); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if p.FlowControl() && tio.Cflag&unix.CRTSCTS == 0 {
		t.Error("SetBaud cleared CRTSCTS")
	}
	if speed := tio.Cflag & unix.CBAUD; speed != unix.B115200 {
		t.Errorf("termios speed %#o, want B115200 (%#o)", speed, unix.B115200)
	}
	if err := p.SetBaud(0); err == nil {
		t.Error("SetBaud(0) accepted")
	}
	if _, err := p.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, master, 2); string(got) != "ok" {
		t.Errorf("master read %q", got)
	}
}

// TestSetFlowControl turns RTS/CTS off and on again through the descriptor
// kept from Open.
func TestSetFlowControl(t *testing.T) {
	_, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 921600, FlowControl: true})
	read := func() bool {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Cflag&unix.CRTSCTS != 0
	}
	if ok, err := p.SetFlowControl(false); err != nil || ok || read() || p.FlowControl() {
		t.Fatalf("off: ok %v err %v termios %v", ok, err, read())
	}
	if ok, err := p.SetFlowControl(true); err != nil || ok != read() || ok != p.FlowControl() {
		t.Fatalf("on: ok %v err %v termios %v", ok, err, read())
	}
}
