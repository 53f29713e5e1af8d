package repl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// Exec runs code on the board in the raw REPL and returns what it printed.
// An exception on the board is a *RemoteError (with the output before it
// still returned). Output lines end in "\n" or "\r\n", as the port prints
// them.
func (c *Client) Exec(ctx context.Context, code string) ([]byte, error) {
	if !c.raw {
		return nil, ErrNotRaw
	}
	// Until the prompt comes back, the board is in an unknown state.
	c.raw = false
	firstPaste := c.paste == pasteUnknown
	if err := c.send(ctx, []byte(code)); err != nil {
		return nil, err
	}
	stdout, err := c.expect(ctx, c.cfg.ExecTimeout, "the end of the snippet's output", "\x04")
	if err != nil {
		if firstPaste && c.paste == pasteYes && errors.Is(err, ErrNoAnswer) {
			err = fmt.Errorf("%w (this was the first code sent in raw-paste mode: if the board's raw-paste mode is broken, --no-raw-paste avoids it)", err)
		}
		return stdout, err
	}
	stderr, err := c.expect(ctx, c.cfg.Timeout, "the end of the snippet's error output", "\x04")
	if err != nil {
		return stdout, err
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "the raw REPL prompt", rawPrompt); err != nil {
		return stdout, err
	}
	c.raw = true
	if len(stderr) > 0 {
		return stdout, parseTraceback(stderr)
	}
	return stdout, nil
}

// send hands code to the board: in raw-paste mode when it works, in plain
// raw mode otherwise. When it returns nil the board runs the code.
func (c *Client) send(ctx context.Context, code []byte) error {
	if c.paste != pasteNo {
		ok, err := c.sendRawPaste(ctx, code)
		if err != nil || ok {
			return err
		}
	}
	return c.sendPlain(ctx, code)
}

// sendPlain sends code in plain raw mode, paced, and waits for "OK".
func (c *Client) sendPlain(ctx context.Context, code []byte) error {
	for i := 0; i < len(code); i += c.cfg.PlainChunk {
		if i > 0 {
			if err := sleep(ctx, c.cfg.PlainPause); err != nil {
				return err
			}
		}
		if err := c.write(code[i:min(i+c.cfg.PlainChunk, len(code))]); err != nil {
			return err
		}
	}
	if err := c.write([]byte{ctrlD}); err != nil {
		return err
	}
	ok, err := c.readN(ctx, c.cfg.Timeout, `"OK" for the code`, len(execOK))
	if err != nil {
		return err
	}
	if string(ok) != execOK {
		return fmt.Errorf("the board did not take the code: it answered %q, not %q", ok, execOK)
	}
	c.log.Debug().Int("bytes", len(code)).Msg("sent in plain raw mode")
	return nil
}

// sendRawPaste sends code in raw-paste mode (MicroPython
// docs/reference/repl.rst, "Raw mode and raw-paste mode"). It returns
// false, with the board back at the raw prompt, when the board does not do
// raw-paste mode; the caller then sends in plain raw mode, and so does
// every later call.
func (c *Client) sendRawPaste(ctx context.Context, code []byte) (bool, error) {
	if err := c.write([]byte(rawPasteRequest)); err != nil {
		return false, err
	}
	answer, err := c.peek(ctx, c.cfg.Timeout, "an answer to the raw-paste request", 2)
	if err != nil {
		return false, err
	}
	switch string(answer) {
	case rawPasteYes:
		c.discard(2)
	case rawPasteNo:
		// Understood, not supported; the board prints the prompt again.
		c.discard(2)
		if _, err := c.expect(ctx, c.cfg.Timeout, "the raw REPL prompt", rawPrompt); err != nil {
			return false, err
		}
		c.noPaste("the board does not support raw-paste mode")
		return false, nil
	default:
		// A MicroPython from before raw-paste mode took Ctrl-E and "A" as
		// code and Ctrl-A as "enter the raw REPL" again.
		if _, err := c.expect(ctx, c.cfg.Timeout, "the raw REPL banner after the raw-paste request", rawBanner+rawPrompt); err != nil {
			return false, err
		}
		c.noPaste("the board's MicroPython predates raw-paste mode")
		return false, nil
	}
	hdr, err := c.readN(ctx, c.cfg.Timeout, "the raw-paste window size", 2)
	if err != nil {
		return false, err
	}
	inc := int(binary.LittleEndian.Uint16(hdr))
	if inc == 0 {
		return false, fmt.Errorf("raw-paste: the board announced a window of 0 bytes")
	}
	remain, sent := inc, 0
	for sent < len(code) {
		// Take the board's flow-control bytes: wait for one when the
		// window is used up, read those already there otherwise.
		for remain == 0 || c.buffered() > 0 {
			b, err := c.readN(ctx, c.cfg.Timeout, "a raw-paste window from the board", 1)
			if err != nil {
				return false, fmt.Errorf("raw-paste after %d of %d bytes: %w", sent, len(code), err)
			}
			switch b[0] {
			case ctrlA:
				remain += inc
			case ctrlD:
				return c.pasteAborted(ctx, sent, len(code))
			default:
				return false, fmt.Errorf("raw-paste after %d of %d bytes: the board sent %q instead of flow control", sent, len(code), b)
			}
		}
		n := min(remain, len(code)-sent)
		if err := c.write(code[sent : sent+n]); err != nil {
			return false, err
		}
		sent += n
		remain -= n
	}
	if err := c.write([]byte{ctrlD}); err != nil {
		return false, err
	}
	// The board acknowledges the end of the code with Ctrl-D once it has
	// compiled it; window grants may still come before.
	var stray []byte
	err = c.await(ctx, c.cfg.Timeout, "the end of the raw-paste transfer", func(b []byte) (int, bool) {
		for i, x := range b {
			switch x {
			case ctrlA:
			case ctrlD:
				return i + 1, true
			default:
				stray = append(stray[:0], b[:i+1]...)
				return i + 1, true
			}
		}
		return 0, false
	})
	if err != nil {
		return false, err
	}
	if stray != nil {
		return false, fmt.Errorf("raw-paste: the board sent %q instead of acknowledging the code", stray)
	}
	if c.paste != pasteYes {
		c.log.Debug().Int("window", inc).Msg("raw-paste mode works")
	}
	c.paste = pasteYes
	c.log.Debug().Int("bytes", len(code)).Msg("sent in raw-paste mode")
	return true, nil
}

// pasteAborted handles a board that ended a raw-paste transfer (Ctrl-D)
// after sent of total bytes: acknowledge, and read the output of what it
// compiled back to the prompt. Before any byte was sent, nothing ran: raw-
// paste mode is broken on this board and the caller falls back to plain
// raw mode.
func (c *Client) pasteAborted(ctx context.Context, sent, total int) (bool, error) {
	if err := c.write([]byte{ctrlD}); err != nil {
		return false, err
	}
	const hint = "its raw-paste mode is broken; --no-raw-paste avoids it"
	for _, what := range []string{"the end of the aborted transfer's output", "the end of its error output"} {
		if _, err := c.expect(ctx, c.cfg.Timeout, what, "\x04"); err != nil {
			return false, fmt.Errorf("raw-paste: the board ended the transfer after %d of %d bytes (%s): %w", sent, total, hint, err)
		}
	}
	if _, err := c.expect(ctx, c.cfg.Timeout, "the raw REPL prompt", rawPrompt); err != nil {
		return false, fmt.Errorf("raw-paste: the board ended the transfer after %d of %d bytes (%s): %w", sent, total, hint, err)
	}
	if sent > 0 {
		c.raw = true
		return false, fmt.Errorf("raw-paste: the board ended the transfer after %d of %d bytes, so only part of the code ran", sent, total)
	}
	c.noPaste("the board ended raw-paste mode before taking any code")
	return false, nil
}

func (c *Client) noPaste(why string) {
	c.paste = pasteNo
	c.log.Debug().Str("why", why).Msg("falling back to plain raw mode")
}
