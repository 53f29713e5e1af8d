package repl

import (
	"bufio"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBoard is a MicroPython REPL written in Go, for what the real VM
// cannot show: raw-paste flow control with a small window, a board that
// stops answering, a busy program, a full filesystem. It runs no Python:
// exec answers each snippet.
type fakeBoard struct {
	// window is the raw-paste window increment; 0 answers "R\x00", -1
	// answers like a MicroPython from before raw-paste mode.
	window int
	// abortPaste ends every raw-paste transfer at once, before any code.
	abortPaste bool
	// stopAfter, when positive, makes the board stop answering after
	// that many bytes of code (it still reads, as a hung board's UART
	// driver does).
	stopAfter int
	// busy starts the board running a program that prints until it gets
	// two Ctrl-Cs (it catches the first).
	busy bool
	// raw starts the board in the raw REPL.
	raw bool
	// exec answers a snippet; nil prints nothing.
	exec func(code string) (stdout, stderr string)

	conn net.Conn
	done chan struct{}

	mu         sync.Mutex
	codes      []string // snippets run, in order
	viaPaste   []bool   // whether each came in raw-paste mode
	requests   int      // raw-paste requests
	grants     int      // window grants sent (Ctrl-A in raw-paste)
	overrun    int      // most code bytes received beyond the window granted
	codeBytes  int      // code bytes received in all
	interrupts int
}

// start runs the board on one end of a net.Pipe and returns the other end,
// for a Client.
func (f *fakeBoard) start(t *testing.T) net.Conn {
	t.Helper()
	host, board := net.Pipe()
	f.conn, f.done = board, make(chan struct{})
	go f.run()
	t.Cleanup(func() {
		board.Close()
		<-f.done
	})
	return host
}

func (f *fakeBoard) write(s string) { f.conn.Write([]byte(s)) }

// stopped reports whether the board no longer answers, and counts code.
func (f *fakeBoard) countCode(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codeBytes += n
	return f.stopAfter > 0 && f.codeBytes >= f.stopAfter
}

func (f *fakeBoard) run() {
	defer close(f.done)
	r := bufio.NewReader(f.conn)
	raw := f.raw
	var line []byte
	var ticker chan struct{} // closed to stop the busy program
	tickerDone := make(chan struct{})
	if f.busy {
		ticker = make(chan struct{})
		go func() {
			defer close(tickerDone)
			for {
				select {
				case <-ticker:
					return
				case <-time.After(time.Millisecond):
					f.write("tick\r\n")
				}
			}
		}()
	} else {
		close(tickerDone)
	}
	defer func() {
		if ticker != nil {
			close(ticker)
		}
		<-tickerDone
	}()
	hung := false
	for {
		c, err := r.ReadByte()
		if err != nil {
			return
		}
		if hung {
			continue
		}
		switch {
		case ticker != nil: // a program runs: only Ctrl-C reaches it
			if c == ctrlC {
				f.mu.Lock()
				f.interrupts++
				n := f.interrupts
				f.mu.Unlock()
				if n == 1 {
					f.write("caught KeyboardInterrupt, cleaning up\r\n")
					continue
				}
				close(ticker)
				<-tickerDone
				ticker = nil
				f.write("Traceback (most recent call last):\r\n  File \"main.py\", line 9, in <module>\r\nKeyboardInterrupt: \r\n" +
					"MicroPython v1.27.0 on 2025-12-10; fake board\r\nType \"help()\" for more information.\r\n>>> ")
			}
		case !raw:
			switch c {
			case ctrlA:
				raw, line = true, nil
				f.write("\r\nraw REPL; CTRL-B to exit\r\n>")
			case ctrlC, '\r':
				f.write("\r\n>>> ")
			case ctrlD:
				f.write("\r\nMPY: soft reboot\r\n")
			default:
				f.write(string(c)) // echo
			}
		default:
			switch c {
			case ctrlA:
				if string(line) == "\x05A" {
					line = nil
					f.mu.Lock()
					f.requests++
					f.mu.Unlock()
					switch {
					case f.window > 0:
						hung = f.rawPaste(r)
					case f.window == 0:
						f.write("R\x00>")
					default:
						f.write("raw REPL; CTRL-B to exit\r\n>")
					}
					continue
				}
				line = nil
				f.write("raw REPL; CTRL-B to exit\r\n>")
			case ctrlB:
				raw = false
				f.write("\r\nMicroPython v1.27.0 on 2025-12-10; fake board\r\nType \"help()\" for more information.\r\n>>> ")
			case ctrlC:
				line = nil
			case ctrlD:
				if len(line) == 0 {
					f.write("OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")
					continue
				}
				f.write("OK")
				f.runCode(string(line), false)
				line = nil
			default:
				line = append(line, c)
				if f.countCode(1) {
					hung = true
				}
			}
		}
	}
}

// rawPaste receives one snippet in raw-paste mode, granting a window each
// time it has taken window bytes, and runs it. It reports whether the
// board hung.
func (f *fakeBoard) rawPaste(r *bufio.Reader) bool {
	var hdr [2]byte
	binary.LittleEndian.PutUint16(hdr[:], uint16(f.window))
	if f.abortPaste {
		f.write("R\x01" + string(hdr[:]) + "\x01\x04")
		for { // wait for the host's Ctrl-D, ignoring code it sent meanwhile
			c, err := r.ReadByte()
			if err != nil || c == ctrlD {
				break
			}
		}
		f.write("\x04\x04>")
		return false
	}
	// Two windows at the start, as MicroPython grants them.
	f.write("R\x01" + string(hdr[:]) + "\x01")
	granted, got, sinceGrant := 2*f.window, 0, 0
	f.mu.Lock()
	f.grants++
	f.mu.Unlock()
	var code []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return true
		}
		if c == ctrlD {
			break
		}
		code = append(code, c)
		got++
		if f.countCode(1) {
			return true
		}
		f.mu.Lock()
		f.overrun = max(f.overrun, got-granted)
		f.mu.Unlock()
		if sinceGrant++; sinceGrant == f.window {
			sinceGrant = 0
			granted += f.window
			f.mu.Lock()
			f.grants++
			f.mu.Unlock()
			f.write("\x01")
		}
	}
	f.write("\x04")
	f.runCode(string(code), true)
	return false
}

// runCode answers a snippet: its output, Ctrl-D, its error output,
// Ctrl-D, the prompt.
func (f *fakeBoard) runCode(code string, paste bool) {
	f.mu.Lock()
	f.codes = append(f.codes, code)
	f.viaPaste = append(f.viaPaste, paste)
	f.mu.Unlock()
	var out, errOut string
	if f.exec != nil {
		out, errOut = f.exec(code)
	}
	f.write(out + "\x04" + errOut + "\x04>")
}

func (f *fakeBoard) snapshot() (codes []string, viaPaste []bool, requests, grants, overrun int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.codes...), append([]bool(nil), f.viaPaste...), f.requests, f.grants, f.overrun
}

// traceback is what MicroPython prints for an uncaught exception.
func traceback(last string) string {
	return "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n" + last + "\r\n"
}

// printed returns the exec answer for code that prints lines.
func printed(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n"
}
