// Package repl drives the MicroPython REPL of a board over its serial
// console, as `uartproxy flash` needs it: interrupt the running program,
// enter the raw REPL, run Python snippets (in raw-paste mode with its flow
// control when the board offers it, in plain raw mode otherwise), soft
// reset, and the file operations built on snippets (files.go): sha256 of
// files, mkdir -p, chunked writes verified by sha256, reads, free space.
//
// Every wait has a timeout (Config) and ends in a clear error: ErrNoRawREPL,
// ErrNotMicroPython, a *TimeoutError (ErrNoAnswer) or a *RemoteError, the
// board's traceback. Code sent to the board is never logged: it may hold a
// Wi-Fi password.
//
// Concurrency: a Client is used by one goroutine at a time, except Close,
// which may be called from any goroutine and unblocks a pending call. The
// Client owns one goroutine, which reads the port until Close.
package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// pasteState says whether raw-paste mode works on the board.
type pasteState uint8

const (
	pasteUnknown pasteState = iota
	pasteYes
	pasteNo
)

// Client talks to one board.
type Client struct {
	port io.ReadWriteCloser
	cfg  Config
	log  zerolog.Logger

	mu       sync.Mutex
	buf      []byte // received, not yet consumed
	received int64  // bytes received in all
	rerr     error  // the read error that ended readLoop
	wake     chan struct{}

	done      chan struct{} // closed when readLoop returns
	closeOnce sync.Once
	closeErr  error

	// Used by the calling goroutine only.
	raw   bool // in the raw REPL, its prompt consumed
	paste pasteState
	chunk int // WriteFile's chunk derived from Info
}

// New returns a Client on port, which it owns from now on: Close closes it.
// It starts reading at once, so nothing the board sends is lost.
func New(port io.ReadWriteCloser, cfg Config) *Client {
	cfg = cfg.withDefaults()
	c := &Client{
		port: port,
		cfg:  cfg,
		log:  cfg.Log,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if cfg.NoRawPaste {
		c.paste = pasteNo
	}
	go c.readLoop()
	return c
}

// Close closes the port and waits for the reading goroutine. It may be
// called more than once and from any goroutine.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.port.Close()
		<-c.done
	})
	return c.closeErr
}

// RawPaste reports whether the last snippet went in raw-paste mode.
func (c *Client) RawPaste() bool { return c.paste == pasteYes }

func (c *Client) readLoop() {
	defer close(c.done)
	b := make([]byte, 4096)
	for {
		n, err := c.port.Read(b)
		if n > 0 {
			c.mu.Lock()
			if len(c.buf)+n > maxBuffered {
				c.rerr = ErrOverflow
				c.mu.Unlock()
				c.signal()
				return
			}
			c.buf = append(c.buf, b[:n]...)
			c.received += int64(n)
			c.mu.Unlock()
			c.signal()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // a port opened with a read timeout
			}
			c.mu.Lock()
			c.rerr = err
			c.mu.Unlock()
			c.signal()
			return
		}
	}
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// await waits until match, called with everything received and not yet
// consumed, reports done; it then consumes n bytes. It gives up after d,
// when ctx ends or when the port fails.
func (c *Client) await(ctx context.Context, d time.Duration, what string, match func(b []byte) (n int, done bool)) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		n, done := match(c.buf)
		if done {
			c.buf = c.buf[n:]
			if len(c.buf) == 0 {
				c.buf = nil
			}
			c.mu.Unlock()
			return nil
		}
		rerr := c.rerr
		got := excerpt(c.buf, 64)
		c.mu.Unlock()
		if rerr != nil {
			return fmt.Errorf("waiting for %s: %w", what, rerr)
		}
		select {
		case <-c.wake:
		case <-timer.C:
			return &TimeoutError{Wait: what, After: d, Got: got}
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// expect waits for token and returns what came before it; both are
// consumed.
func (c *Client) expect(ctx context.Context, d time.Duration, what, token string) ([]byte, error) {
	var before []byte
	err := c.await(ctx, d, what, func(b []byte) (int, bool) {
		i := bytes.Index(b, []byte(token))
		if i < 0 {
			return 0, false
		}
		before = bytes.Clone(b[:i])
		return i + len(token), true
	})
	return before, err
}

// readN waits for n bytes and consumes them.
func (c *Client) readN(ctx context.Context, d time.Duration, what string, n int) ([]byte, error) {
	var out []byte
	err := c.await(ctx, d, what, func(b []byte) (int, bool) {
		if len(b) < n {
			return 0, false
		}
		out = bytes.Clone(b[:n])
		return n, true
	})
	return out, err
}

// peek waits for n bytes without consuming them.
func (c *Client) peek(ctx context.Context, d time.Duration, what string, n int) ([]byte, error) {
	var out []byte
	err := c.await(ctx, d, what, func(b []byte) (int, bool) {
		if len(b) < n {
			return 0, false
		}
		out = bytes.Clone(b[:n])
		return 0, true
	})
	return out, err
}

// discard consumes n bytes that peek saw.
func (c *Client) discard(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = c.buf[min(n, len(c.buf)):]
}

// buffered returns how many bytes are waiting.
func (c *Client) buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// take consumes and returns everything waiting.
func (c *Client) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	return b
}

func (c *Client) total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

// drainQuiet consumes what the board sends until it has been silent for
// quiet, or for at most max, and returns it.
func (c *Client) drainQuiet(ctx context.Context, quiet, max time.Duration) ([]byte, error) {
	var out []byte
	deadline := time.Now().Add(max)
	for {
		out = append(out, c.take()...)
		d := min(quiet, time.Until(deadline))
		if d <= 0 {
			return out, nil
		}
		timer := time.NewTimer(d)
		select {
		case <-c.wake:
			timer.Stop()
		case <-timer.C:
			out = append(out, c.take()...)
			return out, nil
		case <-ctx.Done():
			timer.Stop()
			return out, ctx.Err()
		}
		c.mu.Lock()
		rerr := c.rerr
		c.mu.Unlock()
		if rerr != nil {
			return append(out, c.take()...), rerr
		}
	}
}

// write sends p, within Timeout when the port has write deadlines.
func (c *Client) write(p []byte) error {
	type writeDeadliner interface{ SetWriteDeadline(time.Time) error }
	if wd, ok := c.port.(writeDeadliner); ok {
		wd.SetWriteDeadline(time.Now().Add(c.cfg.Timeout))
	}
	if _, err := c.port.Write(p); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &TimeoutError{Wait: "room to write", After: c.cfg.Timeout}
		}
		return fmt.Errorf("write to the board: %w", err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enter interrupts whatever runs on the board (Ctrl-C twice) and enters
// the raw REPL (Ctrl-A). It tries twice, each time waiting Timeout for the
// banner, and tells a busy or silent port (ErrNoRawREPL) from a board that
// is not MicroPython (ErrNotMicroPython).
func (c *Client) Enter(ctx context.Context) error {
	c.raw = false
	start, began := c.total(), time.Now()
	var seen []byte
	for attempt := 1; attempt <= enterAttempts; attempt++ {
		// "\r" ends a half-typed line of the friendly REPL; in the raw
		// REPL the Ctrl-C clears it.
		if err := c.write([]byte{'\r', ctrlC}); err != nil {
			return err
		}
		if err := sleep(ctx, interruptGap); err != nil {
			return err
		}
		if err := c.write([]byte{ctrlC}); err != nil {
			return err
		}
		out, err := c.drainQuiet(ctx, quietTime, c.cfg.Timeout)
		seen = append(seen, out...)
		if err != nil {
			return fmt.Errorf("interrupt the board: %w", err)
		}
		if err := c.write([]byte{'\r', ctrlA}); err != nil {
			return err
		}
		var before []byte
		before, err = c.expect(ctx, c.cfg.Timeout, "the raw REPL banner", rawBanner+rawPrompt)
		if err == nil {
			// A board that was slow to answer an earlier attempt prints
			// its banner again: let it, and forget it.
			if _, err := c.drainQuiet(ctx, quietTime, c.cfg.Timeout); err != nil {
				return fmt.Errorf("enter the raw REPL: %w", err)
			}
			c.raw = true
			c.log.Debug().Int("attempt", attempt).Msg("in the raw REPL")
			return nil
		}
		if !errors.Is(err, ErrNoAnswer) {
			return err
		}
		seen = append(seen, before...)
		seen = append(seen, c.take()...)
		c.log.Debug().Int("attempt", attempt).Int("bytes", len(seen)).Msg("no raw REPL banner yet")
	}
	return enterError(c.total()-start, seen, time.Since(began).Round(100*time.Millisecond))
}

// enterError explains why Enter failed from what the board sent.
func enterError(n int64, seen []byte, waited time.Duration) error {
	switch {
	case n == 0:
		return fmt.Errorf("%w: the board sent nothing in %v (is this the board's USB console? is it powered?)", ErrNoRawREPL, waited)
	case bytes.Contains(seen, []byte("MicroPython")) || bytes.Contains(seen, []byte(friendlyPrompt)) ||
		bytes.Contains(seen, []byte("Traceback")) || bytes.Contains(seen, []byte("raw REPL")):
		return fmt.Errorf("%w: the board runs MicroPython but did not switch to the raw REPL (does its program ignore Ctrl-C? press its reset button and try again): %q",
			ErrNoRawREPL, excerpt(seen, 64))
	default:
		return fmt.Errorf("%w: it sent %d bytes, none of them a MicroPython prompt (is this the right port and baud rate?): %q",
			ErrNotMicroPython, n, excerpt(seen, 64))
	}
}

// SoftReset soft-resets the board from the raw REPL (Ctrl-D on an empty
// line): the Python heap is freed and the board comes back in the raw
// REPL without running boot.py or main.py.
func (c *Client) SoftReset(ctx context.Context) error {
	if !c.raw {
		return ErrNotRaw
	}
	c.raw = false
	if err := c.write([]byte{ctrlD}); err != nil {
		return err
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "\"soft reboot\"", softReboot); err != nil {
		return fmt.Errorf("soft reset: %w", err)
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "the raw REPL banner after the soft reset", rawBanner+rawPrompt); err != nil {
		return fmt.Errorf("soft reset: %w", err)
	}
	c.raw = true
	return nil
}

// Exit leaves the raw REPL for the friendly one (Ctrl-B), where a person
// types, and waits for its prompt.
func (c *Client) Exit(ctx context.Context) error {
	if !c.raw {
		return ErrNotRaw
	}
	c.raw = false
	if err := c.write([]byte{ctrlB}); err != nil {
		return err
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "the friendly REPL prompt", friendlyPrompt); err != nil {
		return fmt.Errorf("leave the raw REPL: %w", err)
	}
	return nil
}

// Reboot leaves the raw REPL (Ctrl-B) and soft-resets the board from the
// friendly REPL (Ctrl-D), so that it runs boot.py and main.py. It returns
// once the board has said "soft reboot"; Console reads what follows.
func (c *Client) Reboot(ctx context.Context) error {
	if err := c.Exit(ctx); err != nil {
		return err
	}
	if err := c.write([]byte{ctrlD}); err != nil {
		return err
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "\"soft reboot\"", softReboot); err != nil {
		return fmt.Errorf("soft reset: %w", err)
	}
	return nil
}

// Console returns what the board prints on its console from now on, until
// stop reports true for all of it, d passes, ctx ends or the port fails.
// stop may be nil.
func (c *Client) Console(ctx context.Context, d time.Duration, stop func(out []byte) bool) []byte {
	var out []byte
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		out = append(out, c.take()...)
		if stop != nil && stop(out) {
			return out
		}
		c.mu.Lock()
		rerr := c.rerr
		c.mu.Unlock()
		if rerr != nil {
			return append(out, c.take()...)
		}
		select {
		case <-c.wake:
		case <-timer.C:
			return append(out, c.take()...)
		case <-ctx.Done():
			return append(out, c.take()...)
		}
	}
}
