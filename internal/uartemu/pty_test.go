//go:build linux

package uartemu

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"
)

// readSerial reads n bytes from a serial port, giving up after a while.
func readSerial(t *testing.T, p serial.Port, n int) []byte {
	t.Helper()
	if err := p.SetReadTimeout(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 1024)
	for deadline := time.Now().Add(10 * time.Second); len(got) < n && time.Now().Before(deadline); {
		m, err := p.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:m]...)
	}
	return got
}

func TestPTY(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyESP")
	p, err := NewPTY(Symmetric(Line{Baud: 921600}), link)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.HasPrefix(p.Path(), "/dev/pts/") || p.Link() != link {
		t.Fatalf("Path %q Link %q", p.Path(), p.Link())
	}
	if target, err := os.Readlink(link); err != nil || target != p.Path() {
		t.Fatalf("Readlink(%s) = %q, %v; want %q", link, target, err, p.Path())
	}
	dev := p.Device()
	dev.SetReadDeadline(time.Now().Add(10 * time.Second))

	// Open by path, talk both ways, close, and open again.
	for round, path := range []string{p.Path(), link, p.Path()} {
		port, err := serial.Open(path, &serial.Mode{BaudRate: 921600}) // the line's rate: the pty follows the host's
		if err != nil {
			t.Fatalf("round %d: open %s: %v", round, path, err)
		}
		up := append([]byte("host says hi\r\n\x00\x03\x11\x13\xff"), randomBytes(8192, uint64(round))...)
		if _, err := port.Write(up); err != nil {
			t.Fatalf("round %d: write: %v", round, err)
		}
		if got := readFull(t, dev, len(up)); !bytes.Equal(got, up) {
			t.Errorf("round %d: device got %d bytes, not the %d the host wrote", round, len(got), len(up))
		}
		down := append([]byte("device says hi\n\r\x04\x1a"), randomBytes(8192, uint64(round+10))...)
		if _, err := dev.Write(down); err != nil {
			t.Fatalf("round %d: device write: %v", round, err)
		}
		if got := readSerial(t, port, len(down)); !bytes.Equal(got, down) {
			t.Errorf("round %d: host got %d bytes, not the %d the device wrote", round, len(got), len(down))
		}
		if err := port.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link still there after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := dev.Write([]byte("x")); err == nil {
		t.Error("Device() still open after Close")
	}
}

// TestPTYPaced checks that the pty path is paced at the rate the host set
// (the device at the same rate), not as fast as a pty goes.
func TestPTYPaced(t *testing.T) {
	const baud = 115200
	p, err := NewPTY(Symmetric(Line{Baud: 921600}), "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Device().SetBaud(baud)
	port, err := serial.Open(p.Path(), &serial.Mode{BaudRate: baud})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	size := baud / 10 / 4       // 250 ms
	for p.host.Baud() != baud { // the bridge notices within 20 ms
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if _, err := port.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	p.Device().SetReadDeadline(time.Now().Add(10 * time.Second))
	readFull(t, p.Device(), size)
	if elapsed, want := time.Since(start), time.Second/4; elapsed < want*9/10 || elapsed > want*3/2 {
		t.Errorf("%d bytes took %v, want about %v", size, elapsed, want)
	}
}

func TestPTYLink(t *testing.T) {
	dir := t.TempDir()

	link := filepath.Join(dir, "stale")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	p, err := NewPTY(Symmetric(Line{}), link)
	if err != nil {
		t.Fatalf("replacing a symlink: %v", err)
	}
	if target, _ := os.Readlink(link); target != p.Path() {
		t.Errorf("link points to %q, want %q", target, p.Path())
	}
	p.Close()

	file := filepath.Join(dir, "precious")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := NewPTY(Symmetric(Line{}), file); err == nil {
		p.Close()
		t.Fatal("NewPTY replaced a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("file now holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left %d entries in %s, want 1", len(entries), dir)
	}
}
