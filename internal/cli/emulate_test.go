package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/hostlink"
	"github.com/uartproxy/uartproxy/internal/serialport"
)

// TestEmulate runs 'uartproxy emulate' in-process, talks to the emulated
// device through the pty with the host's stack, reboots it with SIGUSR1 and
// stops it by cancelling the context, as SIGINT does.
func TestEmulate(t *testing.T) {
	skipUnlessLinux(t)
	const baud = 3000000
	path := filepath.Join(t.TempDir(), "ttyESP32")
	// A stale symlink, as a killed emulate leaves behind, is replaced.
	if err := os.Symlink("/dev/pts/nonexistent", path); err != nil {
		t.Fatal(err)
	}

	root := NewRoot()
	var stdout, stderr lockedBuffer // the device logs from its own goroutines
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"emulate", "--pty", path, "--baud", "3000000", "--max-streams", "8", "--boot-time", "100ms", "--json"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- root.ExecuteContext(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("emulate did not return after its context was cancelled")
			return nil
		}
	}
	defer stop()

	waitFor(t, "the pty symlink", func() bool {
		target, err := os.Readlink(path)
		return err == nil && strings.HasPrefix(target, "/dev/pts/") && target != "/dev/pts/nonexistent"
	})

	h, err := hostlink.Open(hostlink.Config{Port: serialport.Config{Path: path, Baud: baud, FlowControl: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	waitUp(t, h)
	p, _ := h.Session().Peer()
	if p.Peer.Baud != baud || p.Peer.MaxStreams != 8 {
		t.Errorf("device announced baud %d, max streams %d; want %d and 8 from the flags", p.Peer.Baud, p.Peer.MaxStreams, baud)
	}
	echo(t, h, 64<<10)

	// SIGUSR1 reboots the device: the host sees a new peer session.
	if err := signalSelf(rebootSignal()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new session after SIGUSR1", func() bool {
		s := h.Link().Stats()
		return s.PeerRestarts >= 1 && s.Established
	})
	waitUp(t, h)
	echo(t, h, 64<<10)

	// Cancelling stops the device and removes the pty: for the host, the
	// adapter vanished.
	if err := stop(); err != nil {
		t.Fatalf("emulate returned %v after its context was cancelled, want nil", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after emulate returned, %s: %v; want it removed", path, err)
	}
	select {
	case <-h.Done():
	case <-time.After(5 * time.Second):
		t.Error("the host's link did not stop when the pty went away")
	}

	var info emulateInfo
	if err := json.Unmarshal([]byte(stdout.String()), &info); err != nil {
		t.Fatalf("%v in %q", err, stdout.String())
	}
	if want := "uartproxy serve --port " + path + " --baud 3000000"; info.Connect != want {
		t.Errorf("connect %q, want %q", info.Connect, want)
	}
	if info.Path != path || !strings.HasPrefix(info.PTY, "/dev/pts/") || info.Baud != baud || info.Flow != "rtscts" || info.MaxStreams != 8 {
		t.Errorf("printed %+v", info)
	}
	logs := stderr.String()
	for _, want := range []string{`"message":"replacing an existing symlink"`, `"message":"emulated ESP32 ready"`, `"message":"SIGUSR1: rebooting the emulated ESP32"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestEmulateText(t *testing.T) {
	skipUnlessLinux(t)
	path := filepath.Join(t.TempDir(), "ttyESP32")
	root := NewRoot()
	var stdout lockedBuffer
	root.SetOut(&stdout)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"emulate", "--pty", path, "--baud", "115200", "--flow", "none"})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- root.ExecuteContext(ctx) }()
	waitFor(t, "the pty symlink", func() bool { _, err := os.Readlink(path); return err == nil })
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if want := "connect with: uartproxy serve --port " + path + " --baud 115200 --flow none\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("printed\n%s\nwant a line %q", stdout.String(), want)
	}
}

func TestEmulateFlags(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ttyESP32")
	tests := []struct {
		name string
		args []string
		want string // in the message of a *UsageError
	}{
		{"no pty", nil, "--pty is required"},
		{"plain file", []string{"--pty", plain}, "--pty " + plain + ": exists and is not a symlink"},
		{"directory", []string{"--pty", dir}, "exists and is not a symlink"},
		{"zero baud", []string{"--pty", path, "--baud", "0"}, "--baud 0: want a positive rate"},
		{"baud not a number", []string{"--pty", path, "--baud", "fast"}, `invalid argument "fast" for "-b, --baud" flag`},
		{"bad flow", []string{"--pty", path, "--flow", "xonxoff"}, `invalid argument "xonxoff" for "--flow" flag: want one of rtscts, none`},
		{"ber 1", []string{"--pty", path, "--ber", "1"}, "--ber 1: want a probability in [0, 1)"},
		{"negative ber", []string{"--pty", path, "--ber", "-1e-5"}, "--ber -1e-05: want a probability"},
		{"ber NaN", []string{"--pty", path, "--ber", "NaN"}, "--ber NaN: want a probability"},
		{"drop above 1", []string{"--pty", path, "--drop", "1.5"}, "--drop 1.5: want a probability"},
		{"burst rate 1", []string{"--pty", path, "--burst-rate", "1"}, "--burst-rate 1: want a probability"},
		{"zero burst length", []string{"--pty", path, "--burst-len", "0"}, "--burst-len 0: want a positive number"},
		{"negative rx buffer", []string{"--pty", path, "--rx-buffer", "-1"}, "--rx-buffer -1: want a positive number"},
		{"zero max streams", []string{"--pty", path, "--max-streams", "0"}, "--max-streams 0: want a positive number"},
		{"zero boot time", []string{"--pty", path, "--boot-time", "0s"}, "--boot-time 0s: want a positive duration"},
		{"boot time not a duration", []string{"--pty", path, "--boot-time", "soon"}, `invalid argument "soon" for "--boot-time" flag`},
		{"stray argument", []string{"--pty", path, "extra"}, `"uartproxy emulate" takes no arguments`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, NewRoot(), append([]string{"emulate"}, tt.args...)...)
			var usage *UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a *UsageError saying %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created on a usage error", path)
			}
		})
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
		t.Errorf("the plain file was touched: %q, %v", b, err)
	}
}

func TestRebootSignal(t *testing.T) {
	skipUnlessLinux(t)
	// syscall.Signal's String names it; SIGUSR1 itself does not build on
	// Windows, so it is not named here either.
	if got := rebootSignal().String(); got != "user defined signal 1" {
		t.Errorf("rebootSignal() is %q, want SIGUSR1 (user defined signal 1)", got)
	}
}

func skipUnlessLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("emulate needs a Linux pty")
	}
}

// signalSelf sends sig to this process.
func signalSelf(sig os.Signal) error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// lockedBuffer is a bytes.Buffer that several goroutines may write, as
// they may write os.Stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitUp(t *testing.T, h *hostlink.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := h.Session().WaitUp(ctx); err != nil {
		t.Fatalf("no handshake: %v (host link %+v)", err, h.Link().Stats())
	}
}

// echo sends n random bytes through the device's echo service and checks
// they come back unchanged.
func echo(t *testing.T, h *hostlink.Host, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := h.Session().OpenService(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, n)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("echo: read %d of %d bytes: %v", len(got), n, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("echo: write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo: %d bytes came back for %d sent, and they differ", len(got), n)
	}
}
