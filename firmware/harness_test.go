package firmware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/uartproxy/uartproxy/internal/cli"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// The end-to-end tests run the unmodified firmware (main.py) under CPython
// with the test shims of tests/shims on PYTHONPATH: machine.UART on a
// pseudo-terminal, network.WLAN that reports connected, the ticks_*
// functions. A pty ignores the baud rate, so they test correctness, not
// speed.

const python = "/usr/bin/python3"

// execEnv makes the test binary run uartproxy's command line instead of
// the tests (see TestMain), so the end-to-end tests need no separate build
// of cmd/uartproxy: a cold `go build` of it takes over a minute on a
// 2-core machine, while the test binary already links every package.
const execEnv = "UARTPROXY_FWTEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		os.Exit(runUartproxy())
	}
	os.Exit(m.Run())
}

// runUartproxy is cmd/uartproxy's main: the root command with the process's
// arguments, stopped by SIGINT or SIGTERM.
func runUartproxy() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRoot()
	root.SetArgs(os.Args[1:])
	if err := root.ExecuteContext(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "uartproxy:", err)
		return 1
	}
	return 0
}

// uartproxyCmd returns the command that runs uartproxy: this test binary
// in uartproxy mode, or $UARTPROXY_TEST_BIN when set (a binary built from
// cmd/uartproxy, e.g. `go build -o /tmp/uartproxy ./cmd/uartproxy`).
func uartproxyCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if p := os.Getenv("UARTPROXY_TEST_BIN"); p != "" {
		return exec.Command(p, args...)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), execEnv+"=1")
	return cmd
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skip(python + " is not installed")
	}
}

// makeRaw puts a pty end in raw mode (no echo, no line discipline), as a
// serial port is.
func makeRaw(t *testing.T, f *os.File) {
	t.Helper()
	fd := int(f.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
}

// ptyPair is one pseudo-terminal: the master for Go, the slave's path for
// a process that opens it like a serial port. The slave stays open here too
// so the master never sees a hang-up while the process restarts.
type ptyPair struct {
	master, slave *os.File
	path          string
}

func newPty(t *testing.T) *ptyPair {
	t.Helper()
	pm, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	makeRaw(t, s)
	// pty.Open leaves the master in blocking mode, where Close does not
	// interrupt a Read. A non-blocking duplicate goes through Go's poller.
	fd, err := unix.Dup(int(pm.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	pm.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	p := &ptyPair{master: m, slave: s, path: s.Name()}
	t.Cleanup(func() { m.Close(); s.Close() })
	return p
}

// relay copies bytes between two pty masters, like a cable, and damages
// about one byte in every `every` (0: none) in each direction, counting
// the damage.
type relay struct {
	damaged atomic.Int64
}

func startRelay(t *testing.T, a, b *os.File, every int, seed int64) *relay {
	r := &relay{}
	pipe := func(dst, src *os.File, seed int64) {
		rng := rand.New(rand.NewSource(seed))
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if every > 0 {
					for i := 0; i < n; i++ {
						if rng.Intn(every) == 0 {
							buf[i] ^= byte(1 + rng.Intn(255))
							r.damaged.Add(1)
						}
					}
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(b, a, seed)
	go pipe(a, b, seed+1)
	return r
}

// syncBuf collects a process's output for the test log.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// device is the firmware running under CPython on a pty.
type device struct {
	dir string
	out *syncBuf
	cmd *exec.Cmd
}

// startFirmware writes cfg as uproxy.json (and files) into a fresh
// "device filesystem" and runs firmware/main.py there on the pty at path.
func startFirmware(t *testing.T, path string, cfg map[string]any, files map[string][]byte) *device {
	t.Helper()
	needPython(t)
	dir := t.TempDir()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uproxy.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{dir: dir, out: &syncBuf{}}
	d.cmd = exec.Command(python, "-u", filepath.Join(fw, "main.py"))
	d.cmd.Dir = dir
	d.cmd.Env = append(os.Environ(),
		"PYTHONPATH="+filepath.Join(fw, "tests", "shims")+string(os.PathListSeparator)+fw,
		"PYTHONDONTWRITEBYTECODE=1",
		"UPROXY_SHIM_UART="+path)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("firmware output:\n%s", d.out.String())
		}
	})
	return d
}

func (d *device) stop() {
	if d.cmd.Process != nil && d.cmd.ProcessState == nil {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	}
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServe runs `uartproxy serve` on the pty at path with args and waits
// for /healthz to answer 200 (the ESP32 is connected).
func startServe(t *testing.T, path string, metrics int, args ...string) *syncBuf {
	t.Helper()
	out := &syncBuf{}
	all := append([]string{"serve", "--port", path, "--baud", "921600", "--flow", "none",
		"--metrics", fmt.Sprintf("127.0.0.1:%d", metrics), "--log-format", "json"}, args...)
	cmd := uartproxyCmd(t, all...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("uartproxy serve output:\n%s", out.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", metrics)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became healthy (last: %v)", err)
		}
		select {
		case <-exited:
			t.Fatalf("uartproxy serve exited:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpServer serves body at /big on 127.0.0.1.
func httpServer(t *testing.T, body []byte) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// udpEcho answers every datagram with itself.
func udpEcho(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// curl fetches url with extra args and returns the body.
func curl(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"-sS", "--fail"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes()
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

var _ = io.EOF

// dnsServer answers A queries for the names in hosts (name → IPv4) on
// 127.0.0.1 over UDP, AAAA with no records, anything else with NXDOMAIN.
// It counts the queries it answered.
func dnsServer(t *testing.T, hosts map[string]string) (int, *atomic.Int64) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:k])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			n.Add(1)
			rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
			name := strings.TrimSuffix(q.Name.String(), ".")
			ip, known := hosts[name]
			if !known {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if known && q.Type == dnsmessage.TypeA {
				a := net.ParseIP(ip).To4()
				b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
					dnsmessage.AResource{A: [4]byte{a[0], a[1], a[2], a[3]}})
			}
			out, err := b.Finish()
			if err == nil {
				c.WriteTo(out, from)
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port, &n
}
