package repl

import (
	"errors"
	"time"
)

// Control characters of the MicroPython REPL (MicroPython
// docs/reference/repl.rst, "Raw mode and raw-paste mode").
//
// protocol: must match MicroPython's shared/runtime/pyexec.c.
const (
	ctrlA = 0x01 // enter the raw REPL; in raw-paste, the board grants a window
	ctrlB = 0x02 // leave the raw REPL for the friendly one
	ctrlC = 0x03 // interrupt the running program; clears the raw REPL line
	ctrlD = 0x04 // end of code; on an empty line, soft reset
	ctrlE = 0x05 // with "A" and Ctrl-A on an empty raw line: raw-paste mode
)

// What the board prints.
//
// protocol: must match MicroPython's shared/runtime/pyexec.c.
const (
	rawBanner       = "raw REPL; CTRL-B to exit\r\n" // followed by the prompt
	rawPrompt       = ">"
	rawPasteRequest = "\x05A\x01"
	rawPasteYes     = "R\x01" // followed by the window-size increment, uint16 LE
	rawPasteNo      = "R\x00" // understood, not supported
	execOK          = "OK"
	softReboot      = "soft reboot\r\n" // "MPY: soft reboot" on the ports we know
	friendlyPrompt  = ">>> "
)

// Tuning.
const (
	// DefaultTimeout is how long the board may take to answer a control
	// sequence or to grant a raw-paste window.
	DefaultTimeout = 3 * time.Second
	// DefaultExecTimeout is how long a snippet may run.
	DefaultExecTimeout = 30 * time.Second
	// DefaultPlainChunk and DefaultPlainPause pace code in plain raw mode,
	// which has no flow control: like MicroPython's pyboard.py, 256 bytes
	// and then 10 ms for the board to take them from its receive buffer.
	DefaultPlainChunk = 256
	DefaultPlainPause = 10 * time.Millisecond

	// interruptGap separates the two Ctrl-Cs, so that a program that
	// catches the first KeyboardInterrupt gets the second one.
	interruptGap = 50 * time.Millisecond
	// quietTime is how long the board must stay silent after the
	// interrupt before Enter asks for the raw REPL.
	quietTime = 100 * time.Millisecond
	// enterAttempts is how many times Enter interrupts and asks.
	enterAttempts = 2
	// maxBuffered bounds what the board may send that nobody has asked
	// for yet; more is a fatal error, never silently dropped.
	maxBuffered = 8 << 20
	// minChunk and maxChunk bound WriteFile's chunk when it is derived
	// from the board's free memory.
	minChunk     = 256
	maxChunk     = 4096
	defaultChunk = 1024
)

var (
	// ErrNoRawREPL means the board did not enter the raw REPL: nothing or
	// no banner came back although it looks like MicroPython.
	ErrNoRawREPL = errors.New("could not enter raw REPL (is another program holding the port?)")
	// ErrNotMicroPython means the board answered, but with no MicroPython
	// REPL banner or prompt: another firmware, or the wrong baud rate.
	ErrNotMicroPython = errors.New("not a MicroPython board (no REPL banner)")
	// ErrNoAnswer is matched (errors.Is) by every *TimeoutError: the board
	// answered before and then stopped.
	ErrNoAnswer = errors.New("board stopped answering")
	// ErrFilesystemFull is matched by a *RemoteError for ENOSPC.
	ErrFilesystemFull = errors.New("the board's filesystem is full")
	// ErrNotRaw is returned by the calls that need the raw REPL before
	// Enter succeeded, or after Reboot.
	ErrNotRaw = errors.New("repl: not in the raw REPL (call Enter first)")
	// ErrOverflow is the read error after the board sent more than
	// maxBuffered bytes that nobody read.
	ErrOverflow = errors.New("repl: the board sent more than 8 MiB that nobody asked for")
)
