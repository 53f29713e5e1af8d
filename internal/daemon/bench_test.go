//go:build linux

package daemon_test

// The serve benchmarks report their figures with b.ReportMetric; each
// iteration is seconds long, so run them once:
//
//	go test -run '^$' -bench . -benchtime=1x ./internal/daemon
//
// Most run the daemon in this process with an emulated ESP32
// (Config.Emulate), so their CPU and memory figures include the device
// and the emulated line. The serve sub-benchmarks of BenchmarkStreams256
// and BenchmarkCPUPerMB build the binary and run `uartproxy serve` on the
// pty of `uartproxy emulate`, and measure the serve process alone.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/proxy"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// benchBaud is the line rate of the benchmarks: the default of serve and
// of a real ESP32 setup.
const benchBaud = 921600

// benchLineRate is what the line carries at most, in bytes/s (8N1).
const benchLineRate = benchBaud / 10.0

// benchConfig is serve's defaults with an emulated ESP32 at benchBaud and
// nothing listening.
func benchConfig() config.Config {
	cfg := config.Default()
	cfg.Emulate = true
	cfg.Baud = benchBaud
	return cfg
}

// benchStart starts a daemon, stopped when the benchmark ends, and waits
// for the ESP32 handshake.
func benchStart(b *testing.B, opts daemon.Options) *daemon.Daemon {
	b.Helper()
	opts.Logger = zerolog.Nop()
	d, err := daemon.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	deadline := time.Now().Add(10 * time.Second)
	for !d.Uplink().Up() {
		if time.Now().After(deadline) {
			b.Fatal("no handshake with the emulated ESP32 within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return d
}

// benchSender listens on 127.0.0.1 and sends n bytes to each connection,
// then closes it: a download with no HTTP in the way.
func benchSender(b *testing.B, n int) net.Addr {
	b.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11) // not all zeros; the link does not compress anyway
	}
	return benchServer(b, func(c net.Conn) {
		// A request line first, so SOCKS5 and HTTP-style clients alike
		// start the transfer by writing.
		bufio.NewReader(c).ReadString('\n')
		c.Write(data)
	})
}

// benchServer runs handle for every connection to a 127.0.0.1 listener;
// the benchmark's cleanup closes everything and waits for the handlers.
func benchServer(b *testing.B, handle func(net.Conn)) net.Addr {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr()
}

// benchHTTP serves n bytes at /blob on 127.0.0.1.
func benchHTTP(b *testing.B, n int) string {
	b.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*13 + i>>9)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(data)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	b.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + "/blob"
}

// download reads c to EOF and returns the bytes read and the steady rate:
// bytes after the first read over the time from the first read to the
// last, so connection setup and the first window's burst do not count.
func download(c io.Reader) (total int64, rate float64, firstByte time.Time, err error) {
	buf := make([]byte, 32<<10)
	var first, last time.Time
	var firstN int
	for {
		n, rerr := c.Read(buf)
		if n > 0 {
			now := time.Now()
			if first.IsZero() {
				first, firstN = now, n
			}
			last = now
			total += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, 0, first, rerr
		}
	}
	if d := last.Sub(first); d > 0 {
		rate = float64(total-int64(firstN)) / d.Seconds()
	}
	return total, rate, first, nil
}

// BenchmarkSOCKS5Curl downloads through SOCKS5 with curl and reports the
// steady goodput as a share of the line rate (bytes/s ÷ baud/10), taken
// from curl's first byte to its last so that curl's start and the SOCKS5
// and HTTP handshakes do not count.
func BenchmarkSOCKS5Curl(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("curl is not installed")
	}
	const n = 1536 << 10 // ~17 s at 921600 baud
	url := benchHTTP(b, n)
	cfg := benchConfig()
	cfg.SOCKS5.Listen = "127.0.0.1:0"
	d := benchStart(b, daemon.Options{Config: cfg})
	socks := d.Addrs().SOCKS5.String()

	var ratios, firstMs []float64
	b.ResetTimer()
	for range b.N {
		out, err := exec.Command("curl", "-sS", "--fail", "--max-time", "120", "-o", "/dev/null",
			"--socks5-hostname", socks,
			"-w", "%{size_download} %{time_starttransfer} %{time_total}", url).Output()
		if err != nil {
			b.Fatalf("curl: %v %s", err, out)
		}
		var size, start, total float64
		if _, err := fmt.Sscan(string(out), &size, &start, &total); err != nil || size != n {
			b.Fatalf("curl printed %q; want %d bytes", out, n)
		}
		ratios = append(ratios, size/(total-start)/benchLineRate)
		firstMs = append(firstMs, start*1e3)
	}
	b.StopTimer()
	b.ReportMetric(mean(ratios), "ratio_of_line_rate")
	b.ReportMetric(mean(ratios)*benchLineRate/1e3, "kB/s")
	b.ReportMetric(mean(firstMs), "ms_to_first_byte")
}

// BenchmarkSOCKS5Go is BenchmarkSOCKS5Curl with a Go client
// (golang.org/x/net/proxy) and a plain TCP sender instead of curl and
// HTTP, timed from the first byte read to the last.
func BenchmarkSOCKS5Go(b *testing.B) {
	const n = 1536 << 10
	target := benchSender(b, n).String()
	cfg := benchConfig()
	cfg.SOCKS5.Listen = "127.0.0.1:0"
	d := benchStart(b, daemon.Options{Config: cfg})
	dialer, err := proxy.SOCKS5("tcp", d.Addrs().SOCKS5.String(), nil, proxy.Direct)
	if err != nil {
		b.Fatal(err)
	}
	var ratios, firstMs []float64
	b.ResetTimer()
	for range b.N {
		begin := time.Now()
		c, err := dialer.Dial("tcp", target)
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(c, "GET\n")
		got, rate, first, err := download(c)
		c.Close()
		if err != nil || got != n {
			b.Fatalf("got %d of %d bytes: %v", got, n, err)
		}
		ratios = append(ratios, rate/benchLineRate)
		firstMs = append(firstMs, float64(first.Sub(begin).Microseconds())/1e3)
	}
	b.StopTimer()
	b.ReportMetric(mean(ratios), "ratio_of_line_rate")
	b.ReportMetric(mean(ratios)*benchLineRate/1e3, "kB/s")
	b.ReportMetric(mean(firstMs), "ms_to_first_byte")
}

// BenchmarkReady times serve's start: from Daemon.Start with an emulated
// ESP32 to the first /healthz 200. Each iteration starts and stops the
// daemon five times and reports the median (ms_to_ready) and the slowest.
func BenchmarkReady(b *testing.B) {
	cfg := benchConfig()
	cfg.Metrics.Listen = "127.0.0.1:0"
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	var all []float64
	b.ResetTimer()
	for range b.N {
		for range 5 {
			d, err := daemon.New(daemon.Options{Config: cfg, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			begin := time.Now()
			if err := d.Start(); err != nil {
				b.Fatal(err)
			}
			url := "http://" + d.Addrs().Metrics.String() + "/healthz"
			for {
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Since(begin) > 10*time.Second {
					b.Fatal("/healthz not 200 within 10 s of Start")
				}
				time.Sleep(2 * time.Millisecond)
			}
			all = append(all, float64(time.Since(begin).Microseconds())/1e3)
			client.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.Shutdown(ctx)
			cancel()
		}
	}
	b.StopTimer()
	slices.Sort(all)
	b.ReportMetric(all[len(all)/2], "ms_to_ready")
	b.ReportMetric(all[len(all)-1], "ms_to_ready_max")
}

// BenchmarkStreams256 holds 256 TCP connections open at once through an
// -L forward to an echo server, each with its own stream to the ESP32,
// and reports resident memory (VmRSS) while they are open and while 4 KB
// cross each of them both ways at once.
//
// inprocess: the daemon runs in this process with Config.Emulate, the
// emulated ESP32's stream limit raised from 16 with
// Options.EmulatedMaxStreams; rss_MB is /proc/self's, so it also counts
// the emulated device with its 256 streams, the echo server and the
// clients. serve: the real binary, `uartproxy serve` on the pty of
// `uartproxy emulate --max-streams 256`; rss_MB is the serve process's
// alone.
func BenchmarkStreams256(b *testing.B) {
	const streams = 256
	b.Run("inprocess", func(b *testing.B) {
		echo := benchServer(b, benchEcho)
		cfg := benchConfig()
		cfg.Forwards = []string{"127.0.0.1:0:" + echo.String()}
		d := benchStart(b, daemon.Options{Config: cfg, EmulatedMaxStreams: streams})
		var fwd string
		for _, a := range d.Addrs().Forwards {
			fwd = a.String()
		}
		runtime.GC()
		base, _ := readVmKB("self", "VmRSS")
		peak, open := 0.0, int64(0)
		b.ResetTimer()
		for range b.N {
			peak = max(peak, holdStreams(b, fwd, streams, "self", func() {
				_, ms := d.Uplink().Stats()
				open = max(open, ms.StreamsOpen)
			}))
		}
		b.StopTimer()
		b.ReportMetric(peak/1024, "rss_MB")
		b.ReportMetric(base/1024, "rss_before_MB")
		b.ReportMetric(float64(open), "streams_open")
	})
	b.Run("serve", func(b *testing.B) {
		echo := benchServer(b, benchEcho)
		bin := benchBinary(b)
		tty, _ := benchEmulate(b, bin, "--max-streams", strconv.Itoa(streams))
		fwd, pid := benchServe(b, bin, tty, echo)
		base, _ := readVmKB(pid, "VmRSS")
		peak := 0.0
		b.ResetTimer()
		for range b.N {
			peak = max(peak, holdStreams(b, fwd, streams, pid, nil))
		}
		b.StopTimer()
		b.ReportMetric(peak/1024, "rss_MB")
		b.ReportMetric(base/1024, "rss_before_MB")
	})
}

// benchEcho echoes with a small buffer, so 256 echo connections weigh
// little in the in-process RSS.
func benchEcho(c net.Conn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// holdStreams opens streams connections to fwd, each checked end to end
// with an echo, then sends 4 KB through each at once; it returns the
// highest VmRSS of process pid ("self" or a number) seen meanwhile, in kB.
// allOpen, if not nil, runs while every connection is open.
func holdStreams(b *testing.B, fwd string, streams int, pid string, allOpen func()) float64 {
	b.Helper()
	conns := make([]net.Conn, streams)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var mu sync.Mutex
	peak := 0.0
	sample := func() {
		if v, err := readVmKB(pid, "VmRSS"); err == nil {
			mu.Lock()
			peak = max(peak, v)
			mu.Unlock()
		}
	}
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	defer func() {
		close(stopSampling)
		sampler.Wait()
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", fwd, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(90 * time.Second))
			msg := fmt.Sprintf("hello %03d\n", i)
			if _, err := io.WriteString(c, msg); err != nil {
				errs <- fmt.Errorf("conn %d: write: %w", i, err)
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				errs <- fmt.Errorf("conn %d: echo %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	sample() // all open and idle
	if allOpen != nil {
		allOpen()
	}

	chunk := make([]byte, 4<<10)
	for i, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c.Write(chunk)
		}()
		go func() {
			defer wg.Done()
			if _, err := io.ReadFull(c, make([]byte, len(chunk))); err != nil {
				errs <- fmt.Errorf("conn %d: echo of 4 KB: %w", i, err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	sample()
	mu.Lock()
	defer mu.Unlock()
	return peak
}

// readVmKB reads a field of /proc/PID/status, in kB.
func readVmKB(pid, field string) (float64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, pid)
}

// cpuSelf is this process's user and system CPU time so far.
func cpuSelf(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is the user and system CPU time of process pid so far, from
// /proc/PID/stat (10 ms resolution).
func cpuOf(b *testing.B, pid string) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
}

// BenchmarkCPUPerMB forwards a download through an -L forward and reports
// the CPU time spent per MB moved.
//
// emulated: the daemon in this process with Config.Emulate; getrusage
// counts the emulated ESP32 and the paced line too, and the sender and
// reader. serve: the real binary on the pty of `uartproxy emulate`, as a
// board behind a USB adapter; cpu_ms_per_MB is the serve process's alone
// (from /proc), device_cpu_ms_per_MB the emulator's.
func BenchmarkCPUPerMB(b *testing.B) {
	const n = 1 << 20 // ~11 s at 921600 baud
	b.Run("emulated", func(b *testing.B) {
		sender := benchSender(b, n)
		cfg := benchConfig()
		cfg.Forwards = []string{"127.0.0.1:0:" + sender.String()}
		d := benchStart(b, daemon.Options{Config: cfg})
		var fwd string
		for _, a := range d.Addrs().Forwards {
			fwd = a.String()
		}
		var cpu time.Duration
		var ratios []float64
		b.ResetTimer()
		for range b.N {
			before := cpuSelf(b)
			ratios = append(ratios, fetchOnce(b, fwd, n))
			cpu += cpuSelf(b) - before
		}
		b.StopTimer()
		mb := float64(b.N) * n / (1 << 20)
		b.ReportMetric(float64(cpu.Microseconds())/1e3/mb, "cpu_ms_per_MB")
		b.ReportMetric(mean(ratios), "ratio_of_line_rate")
	})
	b.Run("serve", func(b *testing.B) {
		sender := benchSender(b, n)
		bin := benchBinary(b)
		tty, emuPID := benchEmulate(b, bin)
		fwd, pid := benchServe(b, bin, tty, sender)
		var cpu, dev time.Duration
		var ratios []float64
		b.ResetTimer()
		for range b.N {
			before, devBefore := cpuOf(b, pid), cpuOf(b, emuPID)
			ratios = append(ratios, fetchOnce(b, fwd, n))
			cpu += cpuOf(b, pid) - before
			dev += cpuOf(b, emuPID) - devBefore
		}
		b.StopTimer()
		mb := float64(b.N) * n / (1 << 20)
		b.ReportMetric(float64(cpu.Microseconds())/1e3/mb, "cpu_ms_per_MB")
		b.ReportMetric(float64(dev.Microseconds())/1e3/mb, "device_cpu_ms_per_MB")
		b.ReportMetric(mean(ratios), "ratio_of_line_rate")
	})
}

// fetchOnce downloads n bytes from the sender behind fwd and returns the
// steady rate as a share of the line rate.
func fetchOnce(b *testing.B, fwd string, n int) float64 {
	b.Helper()
	c, err := net.Dial("tcp", fwd)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	io.WriteString(c, "GET\n")
	got, rate, _, err := download(c)
	if err != nil || got != int64(n) {
		b.Fatalf("got %d of %d bytes: %v", got, n, err)
	}
	return rate / benchLineRate
}

// benchBinary builds uartproxy into the benchmark's temporary directory.
func benchBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "uartproxy")
	build := exec.Command("go", "build", "-o", bin, "github.com/uartproxy/uartproxy/cmd/uartproxy")
	if out, err := build.CombinedOutput(); err != nil {
		b.Skipf("cannot build uartproxy: %v\n%s", err, out)
	}
	return bin
}

// benchProc runs bin with args until the benchmark ends; on failure its
// output is logged.
func benchProc(b *testing.B, bin string, args ...string) (*exec.Cmd, <-chan struct{}, *syncWriter) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	var out syncWriter
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "UARTPROXY_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=")
	})
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if b.Failed() {
			b.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
		}
	})
	return cmd, exited, &out
}

// syncWriter collects a subprocess's output.
type syncWriter struct {
	mu sync.Mutex
	sb strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sb.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sb.String()
}

// benchEmulate runs `uartproxy emulate` on a pty at benchBaud, with extra
// arguments, and returns the pty's path and the emulator's process id.
func benchEmulate(b *testing.B, bin string, extra ...string) (tty, pid string) {
	b.Helper()
	tty = filepath.Join(b.TempDir(), "ttyESP32")
	args := append([]string{"emulate", "--pty", tty, "--baud", strconv.Itoa(benchBaud), "--log-format", "json"}, extra...)
	cmd, exited, out := benchProc(b, bin, args...)
	pid = strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(tty); err == nil {
			return tty, pid
		}
		select {
		case <-exited:
			b.Fatalf("emulate exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("emulate made no pty in 10 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchServe runs `uartproxy serve` on tty with an -L forward to target
// and waits for /healthz 200; it returns the forward's address and
// serve's process id.
func benchServe(b *testing.B, bin, tty string, target net.Addr) (fwd, pid string) {
	b.Helper()
	fwd, metrics := benchFreeAddr(b), benchFreeAddr(b)
	cmd, exited, out := benchProc(b, bin, "serve", "--port", tty, "--baud", strconv.Itoa(benchBaud),
		"-L", fwd+":"+target.String(), "--metrics", metrics, "--log-format", "json")
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + metrics + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return fwd, strconv.Itoa(cmd.Process.Pid)
			}
		}
		select {
		case <-exited:
			b.Fatalf("serve exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("serve's /healthz not 200 in 20 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchFreeAddr returns a loopback address whose port was free a moment
// ago.
func benchFreeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
