package mux

import (
	"context"
	"fmt"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// BaudSwitch describes one change of baud rate and RTS/CTS
// (docs/protocol.md §5.7).
type BaudSwitch struct {
	From, To         int
	FromFlow, ToFlow bool // RTS/CTS before and after
	// Apply sets the local UART (and tells the link) to baud and flow
	// control. It is called with To, and with From again if the switch
	// fails.
	Apply func(baud int, flow bool) error
	// Delay is how long after the device's answer both sides switch
	// (default: 50 ms, or two full frames at the old rate if longer, so
	// the answer has left the device, even from behind a frame already on
	// the wire, before the device switches).
	Delay time.Duration
	// Confirm bounds the ECHO at the new rate (default 600 ms; with the
	// commit it must fit in the device's revert timer of 1 s).
	Confirm time.Duration
}

// Baud-switch defaults (protocol: the device reverts 1000 ms after its
// switch without BAUD_COMMIT, docs/protocol.md §5.7).
const (
	defaultSwitchDelay   = 50 * time.Millisecond
	defaultSwitchConfirm = 600 * time.Millisecond
)

// SwitchBaud changes the line's baud rate on both ends: the device agrees,
// both switch, an ECHO at the new rate confirms, and BAUD_COMMIT makes it
// stick. If the device refuses, nothing changes; if the new rate does not
// work, both ends fall back to From and the error says so. Switch on a
// quiet link: frames crossing at the moment of the switch are garbled and
// must be resent, and data queued behind them waits.
func (s *Session) SwitchBaud(ctx context.Context, sw BaudSwitch) error {
	if sw.Delay <= 0 {
		sw.Delay = defaultSwitchDelay
		if p, ok := s.Peer(); ok && sw.From > 0 {
			frame := time.Duration(float64(p.MaxPayload+32) * 10.5 / float64(sw.From) * float64(time.Second))
			sw.Delay = max(sw.Delay, 2*frame)
		}
	}
	if sw.Confirm <= 0 {
		sw.Confirm = defaultSwitchConfirm
	}
	flow := 0
	if sw.ToFlow {
		flow = 1
	}
	if _, err := s.Request(ctx, message.OpSetBaud, []any{sw.To, sw.Delay.Milliseconds(), flow}); err != nil {
		return fmt.Errorf("device refused %d baud: %w", sw.To, err)
	}
	time.Sleep(sw.Delay)
	if err := sw.Apply(sw.To, sw.ToFlow); err != nil {
		return fmt.Errorf("setting the local UART to %d baud: %w (the device falls back by itself)", sw.To, err)
	}
	fallback := func(cause error) error {
		if err := sw.Apply(sw.From, sw.FromFlow); err != nil {
			return fmt.Errorf("%d baud failed (%v) and the local UART could not go back to %d: %w", sw.To, cause, sw.From, err)
		}
		return fmt.Errorf("%d baud does not work on this line (%v): back at %d", sw.To, cause, sw.From)
	}
	cctx, cancel := context.WithTimeout(ctx, sw.Confirm)
	_, err := s.Echo(cctx, []byte("baud"))
	cancel()
	if err != nil {
		return fallback(err)
	}
	cctx, cancel = context.WithTimeout(ctx, sw.Confirm)
	_, err = s.Request(cctx, message.OpBaudCommit, nil)
	cancel()
	if err != nil {
		return fallback(err)
	}
	return nil
}
