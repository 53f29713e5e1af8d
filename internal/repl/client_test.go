package repl

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// quick are timeouts for fake boards, which answer at once.
var quick = Config{Timeout: 300 * time.Millisecond, ExecTimeout: 500 * time.Millisecond, PlainPause: -1}

// connect starts f and returns a Client on it.
func connect(t *testing.T, f *fakeBoard, cfg Config) *Client {
	t.Helper()
	c := New(f.start(t), cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func enter(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Enter(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestRawPasteWindow(t *testing.T) {
	for _, window := range []int{1, 16, 128} {
		f := &fakeBoard{window: window, exec: func(string) (string, string) { return printed("done"), "" }}
		c := connect(t, f, quick)
		enter(t, c)
		code := strings.Repeat("x = 1234567890\n", 70) // 1050 bytes
		for range 2 {
			out, err := c.Exec(ctxT(t, 5*time.Second), code)
			if err != nil {
				t.Fatalf("window %d: %v", window, err)
			}
			if string(out) != "done\r\n" {
				t.Errorf("window %d: output %q", window, out)
			}
		}
		codes, viaPaste, requests, grants, overrun := f.snapshot()
		if len(codes) != 2 || codes[0] != code || codes[1] != code || !viaPaste[0] || !viaPaste[1] {
			t.Errorf("window %d: the board ran %d snippets (raw-paste %v), want the code twice in raw-paste mode", window, len(codes), viaPaste)
		}
		if !c.RawPaste() || requests != 2 {
			t.Errorf("window %d: RawPaste %v after %d requests", window, c.RawPaste(), requests)
		}
		if overrun > 0 {
			t.Errorf("window %d: the client sent %d bytes beyond the window", window, overrun)
		}
		if want := 2 * len(code) / window; grants < want {
			t.Errorf("window %d: %d grants for %d bytes: the window was not used up", window, grants, 2*len(code))
		}
	}
}

func TestRawPasteFallback(t *testing.T) {
	tests := []struct {
		name string
		f    *fakeBoard
	}{
		{"R\\x00", &fakeBoard{window: 0}},
		{"before raw-paste", &fakeBoard{window: -1}},
		{"ends at once", &fakeBoard{window: 32, abortPaste: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.exec = func(code string) (string, string) { return printed("ran " + code), "" }
			c := connect(t, f, quick)
			enter(t, c)
			for _, code := range []string{"a", "b"} {
				out, err := c.Exec(ctxT(t, 5*time.Second), code)
				if err != nil || string(out) != "ran "+code+"\r\n" {
					t.Fatalf("exec %q: %q, %v", code, out, err)
				}
			}
			codes, viaPaste, requests, _, _ := f.snapshot()
			if strings.Join(codes, ",") != "a,b" || viaPaste[0] || viaPaste[1] {
				t.Errorf("the board ran %q (raw-paste %v), want a and b once each in plain raw mode", codes, viaPaste)
			}
			if requests != 1 || c.RawPaste() {
				t.Errorf("%d raw-paste requests, RawPaste %v: want one request, then plain raw mode", requests, c.RawPaste())
			}
		})
	}
}

func TestNoRawPasteConfig(t *testing.T) {
	f := &fakeBoard{window: 64}
	cfg := quick
	cfg.NoRawPaste = true
	c := connect(t, f, cfg)
	enter(t, c)
	if _, err := c.Exec(ctxT(t, 5*time.Second), "pass"); err != nil {
		t.Fatal(err)
	}
	if _, viaPaste, requests, _, _ := f.snapshot(); requests != 0 || viaPaste[0] {
		t.Errorf("NoRawPaste: %d raw-paste requests", requests)
	}
}

func TestBoardStopsAnswering(t *testing.T) {
	code := strings.Repeat("y = 'some code'\n", 100)
	for _, tt := range []struct {
		name  string
		f     *fakeBoard
		cfg   Config
		wait  string
		paste bool
	}{
		{"raw-paste", &fakeBoard{window: 16, stopAfter: 200}, quick, "raw-paste window", true},
		{"plain raw", &fakeBoard{window: 0, stopAfter: 200}, quick, `"OK"`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, tt.f, tt.cfg)
			enter(t, c)
			start := time.Now()
			_, err := c.Exec(ctxT(t, 10*time.Second), code)
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), tt.wait) {
				t.Fatalf("exec on a board that stopped answering: %v; want a timeout waiting for %s", err, tt.wait)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%v is not a net.Error timeout", err)
			}
			if tt.paste && !regexp.MustCompile(`after \d+ of 1600 bytes`).MatchString(err.Error()) {
				t.Errorf("error %q does not say how far the transfer got", err)
			}
			if _, err := c.Exec(ctxT(t, time.Second), "pass"); !errors.Is(err, ErrNotRaw) {
				t.Errorf("exec after the timeout: %v, want ErrNotRaw (the board's state is unknown)", err)
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestBoardStopsReading(t *testing.T) {
	// A board that reads nothing at all: the write itself must time out
	// (net.Pipe has write deadlines).
	host, board := net.Pipe()
	defer board.Close()
	c := New(host, quick)
	defer c.Close()
	err := c.Enter(ctxT(t, 5*time.Second))
	if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "room to write") {
		t.Fatalf("enter on a board that reads nothing: %v", err)
	}
}

func TestEnterBusyBoard(t *testing.T) {
	f := &fakeBoard{busy: true, window: 64, exec: func(string) (string, string) { return printed("ok"), "" }}
	c := connect(t, f, quick)
	enter(t, c)
	if out, err := c.Exec(ctxT(t, 5*time.Second), "print('ok')"); err != nil || string(out) != "ok\r\n" {
		t.Fatalf("exec after interrupting the program: %q, %v", out, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.interrupts < 2 {
		t.Errorf("%d Ctrl-Cs reached the program, want 2", f.interrupts)
	}
}

func TestEnterFromRawREPL(t *testing.T) {
	f := &fakeBoard{raw: true, window: 64}
	c := connect(t, f, quick)
	enter(t, c)
	enter(t, c) // again, from the raw prompt
	if _, err := c.Exec(ctxT(t, 5*time.Second), "pass"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exit(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Exit(ctxT(t, 5*time.Second)); !errors.Is(err, ErrNotRaw) {
		t.Errorf("exit twice: %v, want ErrNotRaw", err)
	}
	enter(t, c) // from the friendly REPL
}

// garbageBoard answers every byte with bytes that are not MicroPython.
func garbageBoard(t *testing.T, answer string) net.Conn {
	host, board := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 64)
		for {
			if _, err := board.Read(b); err != nil {
				return
			}
			if answer != "" {
				board.Write([]byte(answer))
			}
		}
	}()
	t.Cleanup(func() {
		board.Close()
		<-done
	})
	return host
}

func TestEnterNotMicroPython(t *testing.T) {
	for _, tt := range []struct {
		name, answer string
		want         error
		msg          string
	}{
		{"garbage", "\xff\x00\xfe\x80", ErrNotMicroPython, "not a MicroPython board (no REPL banner)"},
		{"ROM bootloader", "waiting for download\r\n", ErrNotMicroPython, "waiting for download"},
		{"silent", "", ErrNoRawREPL, "could not enter raw REPL (is another program holding the port?)"},
		{"MicroPython without raw REPL", "\r\n>>> ", ErrNoRawREPL, "does its program ignore Ctrl-C"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New(garbageBoard(t, tt.answer), quick)
			defer c.Close()
			start := time.Now()
			err := c.Enter(ctxT(t, 10*time.Second))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("enter: %v; want %v mentioning %q", err, tt.want, tt.msg)
			}
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestFilesystemFull(t *testing.T) {
	f := &fakeBoard{window: 64, exec: func(code string) (string, string) {
		if strings.HasPrefix(code, "_w(") {
			return "", traceback("OSError: [Errno 28] ENOSPC")
		}
		return "", ""
	}}
	c := connect(t, f, quick)
	enter(t, c)
	err := c.WriteFile(ctxT(t, 5*time.Second), "/main.py", []byte("print('hi')\n"), nil)
	if !errors.Is(err, ErrFilesystemFull) {
		t.Fatalf("write on a full board: %v", err)
	}
	want := "write /main.py on the board at byte 0: the board's filesystem is full (OSError: [Errno 28] ENOSPC)"
	if err.Error() != want {
		t.Errorf("error\n %q\nwant\n %q", err, want)
	}
	codes, _, _, _, _ := f.snapshot()
	if last := codes[len(codes)-1]; !strings.Contains(last, "os.remove('/main.py.part')") {
		t.Errorf("the partial file was not removed; last snippet:\n%s", last)
	}
}

func TestClosedPort(t *testing.T) {
	f := &fakeBoard{window: 64}
	c := connect(t, f, quick)
	enter(t, c)
	f.conn.Close() // the board goes away
	_, err := c.Exec(ctxT(t, 5*time.Second), "pass")
	if err == nil || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("exec on a closed port: %v, want the port's error", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	c.Close() // twice: fine
}
