package serialport

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openPty opens a pty pair and returns the master (the far end of the cable)
// and the slave's path (the device under test). Both ends close on cleanup.
func openPty(t *testing.T) (master *os.File, path string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("pty.Open: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		s.Close()
	})
	return m, s.Name()
}

func openPort(t *testing.T, cfg Config) *Port {
	t.Helper()
	p, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// readFull reads len(want) bytes from r, failing the test after a few seconds.
func readFull(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("read: %v", res.err)
		}
		return res.b
	case <-time.After(5 * time.Second):
		t.Fatalf("read: no %d bytes after 5s", n)
		return nil
	}
}

func TestExchangeBothWays(t *testing.T) {
	master, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 921600})
	if p.Path() != path {
		t.Errorf("Path() = %q, want %q", p.Path(), path)
	}

	// Raw mode: every byte value crosses unchanged, including SLIP's 0xc0.
	toDevice := []byte("\xc0\xdb\xdc\x00\r\n\x03\x04\x11\x13\xff")
	if _, err := master.Write(toDevice); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, p, len(toDevice)); !bytes.Equal(got, toDevice) {
		t.Errorf("port read %q, want %q", got, toDevice)
	}

	// More than the pty buffer holds, so Write must wait for the reader.
	fromDevice := bytes.Repeat([]byte("0123456789abcdef\xc0"), 64<<10/17)
	werr := make(chan error, 1)
	go func() {
		_, err := p.Write(fromDevice)
		werr <- err
	}()
	if got := readFull(t, master, len(fromDevice)); !bytes.Equal(got, fromDevice) {
		t.Errorf("master read %d bytes that differ from the %d written", len(got), len(fromDevice))
	}
	if err := <-werr; err != nil {
		t.Errorf("Write: %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	_, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 115200})

	done := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Read block; the test passes either way
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5s after Close")
	}

	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

func TestReadTimeout(t *testing.T) {
	master, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 115200, ReadTimeout: 20 * time.Millisecond})

	n, err := p.Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with no data = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
	}
	// The port is still usable after a timeout.
	if _, err := master.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, p, 2); string(got) != "hi" {
		t.Errorf("read %q after a timeout, want %q", got, "hi")
	}
}

func TestFarEndGone(t *testing.T) {
	master, path := openPty(t)
	p := openPort(t, Config{Path: path, Baud: 115200})

	master.Close()
	_, err := p.Read(make([]byte, 16))
	if !errors.Is(err, ErrDisconnected) {
		t.Errorf("Read after the far end closed: %v, want ErrDisconnected", err)
	}
}

func TestOpenMissingDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyUSB9")
	_, err := Open(Config{Path: path, Baud: 115200})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing): %v, want fs.ErrNotExist", err)
	}
	want := "open " + path + ": no such file or directory (is the adapter plugged in? see `uartproxy ports`)"
	if err.Error() != want {
		t.Errorf("error\n got: %s\nwant: %s", err, want)
	}
}

func TestOpenNotATerminal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Path: path, Baud: 115200})
	if err == nil {
		t.Fatal("Open(regular file) succeeded")
	}
	if !strings.HasPrefix(err.Error(), "open "+path+": ") || !strings.Contains(err.Error(), "not a serial device") {
		t.Errorf("Open(regular file): %v; want it to name the file and say it is not a serial device", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Baud: 115200},
		{Path: "/dev/null", Baud: 0},
		{Path: "/dev/null", Baud: -9600},
		{Path: "/dev/null", Baud: 115200, ReadTimeout: -time.Second},
	} {
		if p, err := Open(cfg); err == nil {
			p.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

func TestOpenErrorHints(t *testing.T) {
	const path = "/dev/ttyUSB0"
	tests := []struct {
		err  error
		want string
		is   error
	}{
		{syscall.EACCES, "open /dev/ttyUSB0: permission denied (add your user to the dialout group: sudo usermod -aG dialout $USER, then log in again)", fs.ErrPermission},
		{syscall.ENOENT, "open /dev/ttyUSB0: no such file or directory (is the adapter plugged in? see `uartproxy ports`)", fs.ErrNotExist},
		{syscall.EBUSY, "open /dev/ttyUSB0: device or resource busy (is another program holding the port?)", syscall.EBUSY},
		{syscall.ENOTTY, "open /dev/ttyUSB0: inappropriate ioctl for device (not a serial device; see `uartproxy ports`)", syscall.ENOTTY},
		{syscall.EIO, "open /dev/ttyUSB0: input/output error", syscall.EIO},
	}
	for _, tt := range tests {
		err := openError(path, tt.err)
		if err.Error() != tt.want {
			t.Errorf("openError(%v)\n got: %s\nwant: %s", tt.err, err, tt.want)
		}
		if !errors.Is(err, tt.is) {
			t.Errorf("openError(%v) does not match %v", tt.err, tt.is)
		}
	}
}
