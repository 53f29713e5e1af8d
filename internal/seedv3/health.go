package seedv3

import (
	"context"
	"net"
	"time"
)

// Reboots, outages and shutdown as the scheduler sees them.

// failAll ends every socket with err.
func (n *Net) failAll(err error) {
	for _, s := range n.ring {
		if !s.gone {
			s.fail(err)
			n.remove(s)
		}
	}
}

// linkDown handles a call that got no RESP before its deadline: the
// device is away, and its sockets with it. When it answers again, a
// sock_reset clears what it may still hold.
func (n *Net) linkDown(err error) {
	if n.down {
		n.log.Debug().Err(err).Msg("seedv3: ESP32 still not answering")
	} else {
		n.log.Warn().Err(err).Msg("seedv3: ESP32 not answering; failing its sockets")
	}
	n.down = true
	n.failAll(err)
	n.needReset = true
	n.havePing = false
	n.nextPing = time.Now()
	n.count(func(st *NetStats) { st.DeviceDowns++ })
}

// housekeep runs when a ping is due: the sock_reset owed after a reboot or
// an outage, else a ping that checks the uptime for a reboot.
func (n *Net) housekeep() {
	if n.needReset {
		if _, err := n.call(n.ctx, OpSockReset, nil); err == nil {
			n.needReset = false
			n.nextPing = time.Now()
		} else {
			n.nextPing = time.Now().Add(n.cfg.PingEvery)
		}
		return
	}
	sendAt := time.Now()
	r, err := n.call(n.ctx, OpPing, nil)
	recvAt := time.Now()
	n.nextPing = recvAt.Add(n.cfg.PingEvery)
	if err != nil {
		return
	}
	m, _ := r.(map[string]any)
	up, ok := asInt(m["t_ms"])
	if !ok {
		return
	}
	if n.havePing {
		// The device ran this ping after sendAt and the last one before
		// lastPingAt, so its uptime grew by at least the time between;
		// less (beyond clock drift) means it restarted.
		elapsed := sendAt.Sub(n.lastPingAt)
		tol := 50*time.Millisecond + elapsed/1000
		if up < n.lastUp+(elapsed-tol).Milliseconds() {
			n.rebooted(up)
		}
	}
	n.havePing, n.lastUp, n.lastPingAt = true, up, recvAt
}

// rebooted fails every socket with ECONNRESET and owes the device a
// sock_reset, which also closes any socket opened since the reboot.
func (n *Net) rebooted(up int64) {
	n.log.Warn().Int64("uptime_ms", up).Msg("seedv3: ESP32 rebooted; its sockets are gone")
	n.failAll(&ResetError{Reason: "ESP32 rebooted"})
	n.needReset = true
	n.nextPing = time.Now()
	n.count(func(st *NetStats) { st.Reboots++ })
}

// ensureReset sends the sock_reset owed before opening a socket.
func (n *Net) ensureReset(ctx context.Context) error {
	if !n.needReset {
		return nil
	}
	if _, err := n.call(ctx, OpSockReset, nil); err != nil {
		return err
	}
	n.needReset = false
	return nil
}

// shutdown ends every socket and closes them on the device.
func (n *Net) shutdown() {
	had := n.needReset
	for _, s := range n.ring {
		if !s.gone {
			had = true
		}
	}
	n.failAll(net.ErrClosed)
	if had && n.c.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.CloseTimeout)
		n.count(func(s *NetStats) { s.Ops[OpSockReset]++ })
		n.c.Call(ctx, OpSockReset, nil)
		cancel()
	}
	n.ring = nil
}
