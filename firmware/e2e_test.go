package firmware_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serveRig is uartproxy serve and the firmware joined by two ptys and a
// relay (the cable), which can damage bytes.
type serveRig struct {
	dev     *device
	dnsHits *atomic.Int64
	relay   *relay
	metrics int
	socks   int
	lfwd    int
	lfwdUDP int
	rfwd    int
	body    []byte
	out     *syncBuf
}

func newServeRig(t *testing.T, damageEvery int, bodySize int) *serveRig {
	t.Helper()
	needPython(t)
	host, board := newPty(t), newPty(t)
	r := &serveRig{body: randomBytes(bodySize, 42)}
	r.relay = startRelay(t, host.master, board.master, damageEvery, 7)
	dnsPort, hits := dnsServer(t, map[string]string{"fw-test.example": "127.0.0.1"})
	r.dnsHits = hits
	r.dev = startFirmware(t, board.path, map[string]any{
		"ssid": "lab", "password": "not-logged", "flow": "none", "model": "esp32c3", "stats_ms": 2000,
		"dns": fmt.Sprintf("127.0.0.1:%d", dnsPort),
	}, nil)
	web := httpServer(t, r.body)
	echo := udpEcho(t)
	r.metrics, r.socks = freePort(t, "tcp"), freePort(t, "tcp")
	r.lfwd, r.lfwdUDP, r.rfwd = freePort(t, "tcp"), freePort(t, "udp"), freePort(t, "tcp")
	r.out = startServe(t, host.path, r.metrics,
		"--socks5", fmt.Sprintf("127.0.0.1:%d", r.socks),
		"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%d", r.lfwd, web),
		"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%d/udp", r.lfwdUDP, echo),
		"-R", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%d", r.rfwd, web))
	return r
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d (sha256 %x)", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// TestServeThroughFirmware runs uartproxy serve against the firmware and
// uses it as a person would: curl through SOCKS5 (names resolved on the
// device) and through a -L forward, UDP through a -L .../udp forward, a
// connection to the device's listener of a -R forward, and the device
// information in /metrics.
func TestServeThroughFirmware(t *testing.T) {
	r := newServeRig(t, 0, 300<<10)
	t.Run("socks5", func(t *testing.T) {
		got := curl(t, "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", r.socks), r.webURL(t, "127.0.0.1"))
		sameBytes(t, "SOCKS5 by address", got, r.body)
		got = curl(t, "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", r.socks), r.webURL(t, "localhost"))
		sameBytes(t, "SOCKS5 by localhost", got, r.body)
		// A name the device resolves with its DNS client (UDP queries to
		// the test's DNS server, polled by the loop).
		got = curl(t, "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", r.socks), r.webURL(t, "fw-test.example"))
		sameBytes(t, "SOCKS5 by name (resolved on the device)", got, r.body)
		if r.dnsHits.Load() == 0 {
			t.Error("the device never asked the DNS server")
		}
		bin, _ := exec.LookPath("curl")
		out, err := exec.Command(bin, "-sS", "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", r.socks), r.webURL(t, "nx.example")).CombinedOutput()
		if err == nil {
			t.Errorf("a name the DNS server does not know was reached: %s", out)
		}
	})
	t.Run("local_forward", func(t *testing.T) {
		got := curl(t, fmt.Sprintf("http://127.0.0.1:%d/big", r.lfwd))
		sameBytes(t, "-L forward", got, r.body)
	})
	t.Run("parallel", func(t *testing.T) {
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func() {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/big", r.lfwd))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && !bytes.Equal(b, r.body) {
					err = fmt.Errorf("body differs: %d bytes", len(b))
				}
				errs <- err
			}()
		}
		for i := 0; i < 4; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("udp_forward", func(t *testing.T) {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", r.lfwdUDP))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 2048)
		got := 0
		for i := 0; i < 40 && got < 5; i++ {
			msg := []byte(fmt.Sprintf("datagram %d \xc0\xdb", i))
			c.Write(msg)
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				continue
			}
			if !bytes.HasPrefix(buf[:n], []byte("datagram ")) {
				t.Fatalf("unexpected datagram %q", buf[:n])
			}
			got++
		}
		if got < 5 {
			t.Fatalf("only %d datagrams came back", got)
		}
	})
	t.Run("remote_forward", func(t *testing.T) {
		// The device listens on 127.0.0.1:rfwd (it is this machine);
		// each connection comes to the host as ACCEPT.
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.rfwd))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("device listener never came up: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		got := curl(t, fmt.Sprintf("http://127.0.0.1:%d/big", r.rfwd))
		sameBytes(t, "-R forward", got, r.body)
	})
	t.Run("metrics", func(t *testing.T) {
		m := string(curl(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metrics)))
		for _, want := range []string{"uartproxy_device_free_memory_bytes 163840", `model="esp32c3"`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
	if strings.Contains(r.dev.out.String(), "not-logged") {
		t.Error("the firmware logged the Wi-Fi password")
	}
}

// webURL is the test web server's /big as reached through the proxy.
func (r *serveRig) webURL(t *testing.T, host string) string {
	t.Helper()
	// The -L forward's target is the web server; find its port from the
	// forward spec serve logged would be brittle, so ask the forward.
	return fmt.Sprintf("http://%s:%d/big", host, r.webPort(t))
}

func (r *serveRig) webPort(t *testing.T) int {
	t.Helper()
	out := r.out.String()
	i := strings.Index(out, fmt.Sprintf("127.0.0.1:%d:127.0.0.1:", r.lfwd))
	if i < 0 {
		t.Fatalf("forward spec not in serve's log:\n%s", out)
	}
	var local, port int
	if _, err := fmt.Sscanf(out[i:], "127.0.0.1:%d:127.0.0.1:%d", &local, &port); err != nil {
		t.Fatalf("parse forward spec: %v", err)
	}
	return port
}

// TestServeThroughFirmwareNoisyLine puts a cable between host and device
// that damages about one byte in 3000 in each direction: CRC-32 catches
// every damaged frame and the selective repeat resends it, so what curl
// gets is byte for byte what the server sent.
func TestServeThroughFirmwareNoisyLine(t *testing.T) {
	r := newServeRig(t, 3000, 200<<10)
	got := curl(t, fmt.Sprintf("http://127.0.0.1:%d/big", r.lfwd))
	sameBytes(t, "-L forward over a noisy line", got, r.body)
	got = curl(t, "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", r.socks), r.webURL(t, "127.0.0.1"))
	sameBytes(t, "SOCKS5 over a noisy line", got, r.body)
	if r.relay.damaged.Load() == 0 {
		t.Fatal("the relay damaged nothing: the test proves nothing")
	}
	m := string(curl(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metrics)))
	if !strings.Contains(m, "uartproxy_link_crc_errors_total") {
		t.Error("no CRC error counter in metrics")
	}
	t.Logf("bytes damaged by the relay: %d", r.relay.damaged.Load())
}

// TestBenchThroughFirmware runs `uartproxy bench` against the firmware:
// ECHO round trips, the discard and source services (the host checks every
// byte of the source pattern) and a baud sweep, which drives SET_BAUD and
// BAUD_COMMIT (§5.7) on the device. A pty ignores the rate, so the figures
// mean nothing; that every phase ends "ok" does.
func TestBenchThroughFirmware(t *testing.T) {
	needPython(t)
	host, board := newPty(t), newPty(t)
	startRelay(t, host.master, board.master, 0, 1)
	dev := startFirmware(t, board.path, map[string]any{"ssid": "lab", "password": "x", "flow": "none"}, nil)
	cmd := uartproxyCmd(t, "bench", "--port", host.path, "--flow", "none", "--duration", "200ms",
		"--sweep-baud", "115200,921600", "--json")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res struct {
		Steps []struct {
			Baud   int
			Report struct {
				Phases []struct {
					Name string
					Down *struct {
						VerifiedBytes int64 `json:"verified_bytes"`
					}
				}
				Verdict string
			}
		}
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, `{"steps"`) {
			if err := json.Unmarshal([]byte(l), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(res.Steps) != 2 {
		t.Fatalf("want 2 steps (one per baud), got %d:\n%s", len(res.Steps), out)
	}
	for _, st := range res.Steps {
		var names []string
		for _, ph := range st.Report.Phases {
			names = append(names, ph.Name)
			if ph.Down != nil && ph.Down.VerifiedBytes == 0 {
				t.Errorf("%d baud, %s: no source bytes verified", st.Baud, ph.Name)
			}
		}
		if strings.Join(names, ",") != "echo,up,down,both" {
			t.Errorf("%d baud: phases %v", st.Baud, names)
		}
		t.Logf("%d baud: %s", st.Baud, st.Report.Verdict)
	}
	if log := dev.out.String(); !strings.Contains(log, "baud 115200 committed") || !strings.Contains(log, "baud 921600 committed") {
		t.Errorf("the device did not commit both switches:\n%s", log)
	}
}
