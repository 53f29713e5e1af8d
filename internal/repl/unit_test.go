package repl

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseTraceback(t *testing.T) {
	tests := []struct {
		in                  string
		exc, msg, name, err string
		errno               int
	}{
		{traceback("OSError: [Errno 28] ENOSPC"), "OSError", "[Errno 28] ENOSPC", "ENOSPC",
			"the board's filesystem is full (OSError: [Errno 28] ENOSPC)", 28},
		{traceback("OSError: 28"), "OSError", "28", "ENOSPC", "the board's filesystem is full (OSError: 28)", 28},
		{traceback("OSError: [Errno 2] ENOENT"), "OSError", "[Errno 2] ENOENT", "ENOENT",
			"no such file or directory on the board (OSError: [Errno 2] ENOENT)", 2},
		{traceback("OSError: 44"), "OSError", "44", "", "the board raised OSError: 44", 44}, // the VM's own ENOENT
		{traceback("OSError: (5, 'EIO')"), "OSError", "(5, 'EIO')", "EIO",
			"the board could not read or write its filesystem (I/O error) (OSError: (5, 'EIO'))", 5},
		{traceback("MemoryError: memory allocation failed, allocating 4096 bytes"), "MemoryError",
			"memory allocation failed, allocating 4096 bytes", "",
			"the board ran out of memory (MemoryError: memory allocation failed, allocating 4096 bytes)", 0},
		{traceback("NameError: name 'x' isn't defined"), "NameError", "name 'x' isn't defined", "",
			"the board raised NameError: name 'x' isn't defined", 0},
		{"Traceback (most recent call last):\n  File \"<stdin>\", line 1\nKeyboardInterrupt: \n", "KeyboardInterrupt", "", "",
			"the board raised KeyboardInterrupt", 0},
		{"\r\n", "exception", "", "", "the board raised exception", 0},
	}
	for _, tt := range tests {
		e := parseTraceback([]byte(tt.in))
		if e.Exception != tt.exc || e.Message != tt.msg || e.Name != tt.name || e.Errno != tt.errno || e.Error() != tt.err {
			t.Errorf("parseTraceback(%q) = %+v, %q", tt.in, e, e.Error())
		}
		if errors.Is(e, ErrFilesystemFull) != (tt.name == "ENOSPC") {
			t.Errorf("%q: errors.Is(ErrFilesystemFull) = %v", tt.in, errors.Is(e, ErrFilesystemFull))
		}
		if strings.Contains(e.Traceback, "\r") {
			t.Errorf("%q: traceback keeps \\r", tt.in)
		}
	}
}

func FuzzParseTraceback(f *testing.F) {
	f.Add([]byte(traceback("OSError: [Errno 28] ENOSPC")))
	f.Add([]byte("OSError: [Errno"))
	f.Add([]byte("OSError: (99999999999999999999,"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := parseTraceback(b)
		if e.Exception == "" || e.Error() == "" {
			t.Fatalf("%q: %+v", b, e)
		}
		if e.Errno < 0 {
			t.Fatalf("%q: errno %d", b, e.Errno)
		}
	})
}

func TestPyBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `b''`},
		{"print('hi')\n", `b'print(\'hi\')\n'`},
		{"a\\b\r\t\"", `b'a\\b\r\t"'`},
		{"\x00\x03\x04\x7f\xff", `b'\x00\x03\x04\x7f\xff'`},
	}
	for _, tt := range tests {
		got := pyBytes([]byte(tt.in))
		if got != tt.want {
			t.Errorf("pyBytes(%q) = %s, want %s", tt.in, got, tt.want)
		}
		for _, c := range []byte(got) {
			if c < 0x20 || c >= 0x7f {
				t.Errorf("pyBytes(%q) holds byte %#x, which the REPL could act on", tt.in, c)
			}
		}
	}
	for in, want := range map[string]string{
		"/main.py":  `'/main.py'`,
		"/it's":     `'/it\'s'`,
		"/grüße.py": `b'/gr\xc3\xbc\xc3\x9fe.py'.decode()`,
	} {
		if got := pyStr(in); got != want {
			t.Errorf("pyStr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestChunkLiteral(t *testing.T) {
	text := []byte("import os\nprint('x')\n")
	if got := chunkLiteral(text); got != pyBytes(text) {
		t.Errorf("text goes as %s, want a bytes literal", got)
	}
	bin := []byte{0, 1, 2, 3, 0xff, 0xfe, 0x80, 0x81, 0x90}
	if got := chunkLiteral(bin); got != "_a(b'AAECA//+gIGQ')" {
		t.Errorf("binary goes as %s, want base64", got)
	}
	if !utf8.ValidString(chunkLiteral(bin)) {
		t.Error("not ASCII")
	}
}

func TestTimeoutErrorText(t *testing.T) {
	e := &TimeoutError{Wait: "the raw REPL prompt", After: 3e9, Got: []byte("x\x00")}
	if got, want := e.Error(), `board stopped answering: waited 3s for the raw REPL prompt (it sent "x\x00")`; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
