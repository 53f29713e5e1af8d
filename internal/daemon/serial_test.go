package daemon_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/uartemu"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

// plugged is an emulated ESP32 behind a pseudo-terminal at a path, as a
// USB-serial adapter would be.
type plugged struct {
	pty *uartemu.PTY
	dev *emulator.Device
}

func plug(t *testing.T, path string, baud int) *plugged {
	t.Helper()
	pty, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{Baud: baud, FlowControl: true}), path)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	dc := emulator.DefaultConfig()
	dc.Baud = baud
	dev, err := emulator.New(pty.Device(), dc)
	if err != nil {
		pty.Close()
		t.Fatal(err)
	}
	p := &plugged{pty: pty, dev: dev}
	t.Cleanup(p.unplug)
	return p
}

// unplug takes the device away: the pty closes and its path goes.
func (p *plugged) unplug() {
	p.dev.Close()
	p.pty.Close()
}

// TestSerialPlugUnplug runs the daemon on a serial port path through the
// real serial code (termios on a pty): the port is missing at start, then
// plugged in, pulled out and plugged in again. /healthz and SOCKS5 follow:
// 503 and reply 0x03 while it is away, 200 and working connections while
// it is there.
func TestSerialPlugUnplug(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the emulated serial port is a Linux pty")
	}
	const baud = 921600
	srv := tcpServer(t, echo)
	path := filepath.Join(t.TempDir(), "ttyESP32")
	cfg := config.Default()
	cfg.Port = path
	cfg.Baud = baud
	cfg.SOCKS5.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Reconnect = config.Reconnect{MinBackoff: config.Duration(50 * time.Millisecond), MaxBackoff: config.Duration(200 * time.Millisecond)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()
	health := func() (int, daemon.Health) {
		resp, body := httpGet(t, "http://"+a.Metrics.String()+"/healthz")
		var h daemon.Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("/healthz body %q: %v", body, err)
		}
		return resp.StatusCode, h
	}
	away := func(when string) {
		t.Helper()
		eventually(t, 10*time.Second, when+": /healthz 503", func() bool {
			code, h := health()
			return code == http.StatusServiceUnavailable && h.State == "absent"
		})
		_, err := socksConnect(ctxFor(t, 15*time.Second), a.SOCKS5.String(), "127.0.0.1", srv.Port)
		if replyOf(err) != repNetworkUnreachable {
			t.Fatalf("%s: CONNECT %v, want reply 0x03", when, err)
		}
	}
	there := func(when string) {
		t.Helper()
		eventually(t, 15*time.Second, when+": /healthz 200", func() bool {
			code, h := health()
			return code == http.StatusOK && h.State == "up"
		})
		c, err := socksConnect(ctxFor(t, 10*time.Second), a.SOCKS5.String(), "127.0.0.1", srv.Port)
		if err != nil {
			t.Fatalf("%s: CONNECT: %v", when, err)
		}
		defer c.Close()
		c.Write([]byte("over the pty"))
		c.(interface{ CloseWrite() error }).CloseWrite()
		if b, err := readAll(c, 10*time.Second); err != nil || string(b) != "over the pty" {
			t.Fatalf("%s: echo %q, %v", when, b, err)
		}
	}

	away("before the device is plugged in")
	p := plug(t, path, baud)
	there("plugged in")
	p.unplug()
	away("pulled out")
	if s := d.Uplink().Status(); s.Losses != 1 {
		t.Errorf("losses %d after one unplug, want 1 (%+v)", s.Losses, s)
	}
	plug(t, path, baud)
	there("plugged in again")
	if s := d.Uplink().Status(); s.State != uplink.StateUp || s.Opens != 2 {
		t.Errorf("status %+v, want up after 2 opens", s)
	}
}
