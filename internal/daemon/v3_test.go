package daemon_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// v3Baud is the seed firmware's default line rate.
const v3Baud = 1400000

// emulatedV3 is emulated() with a board running the seed's v3 firmware.
func emulatedV3() config.Config {
	cfg := emulated()
	cfg.Protocol = config.ProtocolV3
	cfg.Baud = v3Baud
	return cfg
}

// TestV3Serve drives every serve feature the v3 operation set allows
// against the v3 board emulator, with real clients: curl through SOCKS5
// and an -L forward, dig through a UDP forward and the DNS forwarder, a
// reverse forward, /healthz naming the protocol and its limits, and a
// reboot in the middle.
func TestV3Serve(t *testing.T) {
	t.Parallel()
	curl := need(t, "curl", "curl")
	body := randomBytes(t, 512<<10)
	srv := fileServer(t, body)
	httpAddr := srv.Listener.Addr()
	resp := dnsResponder(t)
	echoSrv := tcpServer(t, echo)
	devPort := freePort(t)

	cfg := emulatedV3()
	cfg.Forwards = []string{fwd(httpAddr, false), fwd(resp, true)}
	cfg.Reverse = []string{"127.0.0.1:" + strconv.Itoa(devPort) + ":127.0.0.1:" + strconv.Itoa(echoSrv.Port)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()

	get := func(name string, args ...string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), name)
		args = append([]string{"-sS", "--fail", "--max-time", "60", "-o", out}, args...)
		if res, err := exec.CommandContext(ctxFor(t, 90*time.Second), curl, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: curl %s: %v\n%s", name, strings.Join(args, " "), err, res)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if sum(got) != sum(body) {
			t.Fatalf("%s: %d bytes arrived, not the %d sent", name, len(got), len(body))
		}
	}
	t.Run("socks5", func(t *testing.T) {
		get("socks5", "--socks5-hostname", a.SOCKS5.String(), "http://localhost:"+strconv.Itoa(portOf(httpAddr))+"/big")
	})
	t.Run("forward", func(t *testing.T) {
		get("forward", "http://"+a.Forwards[cfg.Forwards[0]].String()+"/big")
	})
	t.Run("dig", func(t *testing.T) {
		need(t, "dig", "dnsutils")
		out := dig(t, "@127.0.0.1", "-p", strconv.Itoa(portOf(a.Forwards[cfg.Forwards[1]])), "+short", "printer.example.test", "A")
		if strings.TrimSpace(out) != "192.0.2.53" {
			t.Fatalf("dig through the UDP forward printed %q, want 192.0.2.53", out)
		}
		out = dig(t, "@127.0.0.1", "-p", strconv.Itoa(portOf(a.DNS)), "+short", "localhost", "A")
		if strings.TrimSpace(out) != "127.0.0.1" {
			t.Fatalf("dig through the forwarder printed %q, want 127.0.0.1", out)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		var c net.Conn
		eventually(t, 15*time.Second, "the ESP32's listener", func() bool {
			var err error
			c, err = net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(devPort), time.Second)
			return err == nil
		})
		defer c.Close()
		msg := randomBytes(t, 16<<10)
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := readAll(c, 30*time.Second)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo through -R: %d of %d bytes, %v", len(got), len(msg), err)
		}
	})
	t.Run("healthz", func(t *testing.T) {
		res, raw := httpGet(t, "http://"+a.Metrics.String()+"/healthz")
		var h daemon.Health
		if err := json.Unmarshal(raw, &h); err != nil || res.StatusCode != 200 {
			t.Fatalf("healthz %d %s: %v", res.StatusCode, raw, err)
		}
		if h.Protocol != "v3" || len(h.Limits) == 0 {
			t.Fatalf("healthz %+v: want protocol v3 and its limits", h)
		}
	})
	t.Run("reboot", func(t *testing.T) {
		if err := d.Uplink().RebootEmulated(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "a transfer after the reboot", func() bool {
			out := filepath.Join(t.TempDir(), "after")
			err := exec.CommandContext(ctxFor(t, 30*time.Second), curl, "-sS", "--fail", "--max-time", "20", "-o", out,
				"--socks5-hostname", a.SOCKS5.String(), "http://localhost:"+strconv.Itoa(portOf(httpAddr))+"/big").Run()
			got, _ := os.ReadFile(out)
			return err == nil && sum(got) == sum(body)
		})
	})
}
