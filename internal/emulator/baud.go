package emulator

import (
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// baudSetter is a UART whose rate can change (uartemu.Port).
type baudSetter interface {
	SetBaud(baud int) error
	Baud() int
}

// Baud-switch limits (protocol: must match docs/protocol.md §5.7).
const (
	minBaud     = 9600
	maxBaud     = 5000000
	maxDelay    = time.Second
	revertAfter = time.Second // without BAUD_COMMIT after the switch
)

// baudSwitch is a switch that has not been committed yet.
type baudSwitch struct {
	from, to int
	timer    *time.Timer
}

// setBaud answers SET_BAUD: agree now, switch after delay, and fall back
// unless BAUD_COMMIT arrives within revertAfter of the switch.
func (d *Device) setBaud(baud int, delay time.Duration) (any, message.Code) {
	bs, ok := d.port.(baudSetter)
	if !ok {
		return "this UART cannot change rate", message.CodeUnsupported
	}
	if baud < minBaud || baud > maxBaud {
		return "baud out of range", message.CodeUnsupported
	}
	if delay < 0 || delay > maxDelay {
		return "delay out of range", message.CodeProtocol
	}
	d.baudMu.Lock()
	defer d.baudMu.Unlock()
	if d.pendingBaud != nil {
		return "a switch is in progress", message.CodeLimit
	}
	sw := &baudSwitch{from: bs.Baud(), to: baud}
	d.pendingBaud = sw
	sw.timer = time.AfterFunc(delay, func() {
		d.applyBaud(bs, sw.to)
		d.baudMu.Lock()
		defer d.baudMu.Unlock()
		if d.pendingBaud == sw {
			sw.timer = time.AfterFunc(revertAfter, func() { d.revertBaud(bs, sw) })
		}
	})
	return nil, message.CodeOK
}

func (d *Device) applyBaud(bs baudSetter, baud int) {
	if err := bs.SetBaud(baud); err != nil {
		d.cfg.Logger.Warn().Err(err).Int("baud", baud).Msg("cannot change UART rate")
		return
	}
	d.Link().SetBaud(baud)
	d.cfg.Logger.Info().Int("baud", baud).Msg("UART rate changed")
}

func (d *Device) revertBaud(bs baudSetter, sw *baudSwitch) {
	d.baudMu.Lock()
	if d.pendingBaud != sw {
		d.baudMu.Unlock()
		return
	}
	d.pendingBaud = nil
	d.baudMu.Unlock()
	d.cfg.Logger.Warn().Int("from", sw.to).Int("to", sw.from).Msg("no BAUD_COMMIT: falling back")
	d.applyBaud(bs, sw.from)
}

// commitBaud answers BAUD_COMMIT.
func (d *Device) commitBaud() (any, message.Code) {
	d.baudMu.Lock()
	defer d.baudMu.Unlock()
	if d.pendingBaud == nil {
		return "no switch pending", message.CodeProtocol
	}
	d.pendingBaud.timer.Stop()
	d.pendingBaud = nil
	return nil, message.CodeOK
}
