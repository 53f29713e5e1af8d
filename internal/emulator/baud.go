package emulator

import (
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// baudSetter is a UART whose rate and flow control can change
// (uartemu.Port).
type baudSetter interface {
	SetBaud(baud int) error
	Baud() int
	SetFlowControl(on bool)
	FlowControl() bool
}

// lineSetting is a UART's rate and RTS/CTS.
type lineSetting struct {
	baud int
	flow bool
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
	from, to lineSetting
	timer    *time.Timer
}

// setBaud answers SET_BAUD: agree now, switch after delay, and fall back
// unless BAUD_COMMIT arrives within revertAfter of the switch.
// flow is 0 (off), 1 (RTS/CTS) or -1 (unchanged).
func (d *Device) setBaud(baud int, delay time.Duration, flow int) (any, message.Code) {
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
	from := lineSetting{baud: bs.Baud(), flow: bs.FlowControl()}
	to := lineSetting{baud: baud, flow: from.flow}
	if flow >= 0 {
		to.flow = flow == 1
	}
	sw := &baudSwitch{from: from, to: to}
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

func (d *Device) applyBaud(bs baudSetter, to lineSetting) {
	if err := bs.SetBaud(to.baud); err != nil {
		d.cfg.Logger.Warn().Err(err).Int("baud", to.baud).Msg("cannot change UART rate")
		return
	}
	bs.SetFlowControl(to.flow)
	l := d.Link()
	l.SetBaud(to.baud)
	l.SetFlowControl(to.flow)
	d.cfg.Logger.Info().Int("baud", to.baud).Bool("rtscts", to.flow).Msg("UART setting changed")
}

func (d *Device) revertBaud(bs baudSetter, sw *baudSwitch) {
	d.baudMu.Lock()
	if d.pendingBaud != sw {
		d.baudMu.Unlock()
		return
	}
	d.pendingBaud = nil
	d.baudMu.Unlock()
	d.cfg.Logger.Warn().Int("from", sw.to.baud).Int("to", sw.from.baud).Msg("no BAUD_COMMIT: falling back")
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
