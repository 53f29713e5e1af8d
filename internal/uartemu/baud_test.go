package uartemu

import (
	"bytes"
	"go.bug.st/serial"
	"io"
	"testing"
	"time"
)

func TestSetBaud(t *testing.T) {
	host, dev := New(Symmetric(Line{Baud: 115200, FlowControl: true}))
	defer host.Close()
	defer dev.Close()
	send := func(p []byte) []byte {
		t.Helper()
		go host.Write(p)
		got := make([]byte, len(p))
		dev.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(dev, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	msg := bytes.Repeat([]byte("uartproxy"), 50)
	if got := send(msg); !bytes.Equal(got, msg) {
		t.Fatal("matched rates garbled the data")
	}
	// Only the host switches: the device hears noise.
	if err := host.SetBaud(921600); err != nil {
		t.Fatal(err)
	}
	if got := send(msg); bytes.Equal(got, msg) {
		t.Fatal("mismatched rates delivered clean data")
	}
	if g := host.Stats().Garbled; g != int64(len(msg)) {
		t.Fatalf("Garbled = %d, want %d", g, len(msg))
	}
	// Both at the new rate: clean again, and paced at the new rate.
	dev.SetBaud(921600)
	big := bytes.Repeat([]byte{0x55}, 46080) // 0.5 s at 921600
	start := time.Now()
	if got := send(big); !bytes.Equal(got, big) {
		t.Fatal("matched new rate garbled the data")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("46080 bytes at 921600 took %v, want about 0.5 s", d)
	}
	if host.Baud() != 921600 {
		t.Fatalf("Baud() = %d", host.Baud())
	}
	if err := host.SetBaud(0); err == nil {
		t.Fatal("SetBaud(0) accepted")
	}
	h2, d2 := New(Symmetric(Line{}))
	defer h2.Close()
	defer d2.Close()
	if err := h2.SetBaud(9600); err == nil {
		t.Fatal("SetBaud on an unpaced line accepted")
	}
}

// TestPTYFollowsHostBaud: the pty's host end takes the rate the host sets
// through termios, as a USB adapter does (non-standard rates included).
func TestPTYFollowsHostBaud(t *testing.T) {
	p, err := NewPTY(Symmetric(Line{Baud: 921600, FlowControl: true}), "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, baud := range []int{115200, 1400000, 921600} {
		sp, err := serial.Open(p.Path(), &serial.Mode{BaudRate: baud})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for p.host.Baud() != baud && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		sp.Close()
		if got := p.host.Baud(); got != baud {
			t.Fatalf("host end at %d after the host set %d", got, baud)
		}
	}
}

// TestSetFlowControl: RTS/CTS holds a writer back only while both ends use
// it; turning it off releases the writer and bytes overflow instead.
func TestSetFlowControl(t *testing.T) {
	host, dev := New(Symmetric(Line{Baud: 921600, FlowControl: true, RxBuffer: 1024}))
	defer host.Close()
	defer dev.Close()
	done := make(chan struct{})
	go func() {
		host.Write(make([]byte, 8192)) // nobody reads: blocks under RTS/CTS
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("write finished although the reader's buffer is full and RTS/CTS is on")
	case <-time.After(300 * time.Millisecond):
	}
	if host.Stats().Overflow != 0 {
		t.Fatal("overflow under RTS/CTS")
	}
	host.SetFlowControl(false)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("write still blocked after RTS/CTS went off")
	}
	if host.Stats().Overflow == 0 || host.FlowControl() || !dev.FlowControl() {
		t.Fatalf("after switching off: %+v", host.Stats())
	}
}
