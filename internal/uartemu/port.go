package uartemu

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Port is one end of the emulated cable. It is an io.ReadWriteCloser with a
// read deadline; see the package comment for its concurrency rules.
type Port struct {
	name string
	out  *line // the direction this port writes
	in   *line // the direction this port reads

	writeMu   sync.Mutex // one Write at a time, so Writes stay contiguous
	rdl       *deadline
	closeOnce sync.Once
}

// New returns the two ends of a cable configured by cfg. Both must be closed
// to stop the pacing goroutines.
func New(cfg Config) (host, device *Port) {
	h2d := newLine(cfg.HostToDevice, 1)
	d2h := newLine(cfg.DeviceToHost, 2)
	host = &Port{name: "host", out: h2d, in: d2h, rdl: newDeadline()}
	device = &Port{name: "device", out: d2h, in: h2d, rdl: newDeadline()}
	return host, device
}

// String returns "host" or "device".
func (p *Port) String() string { return p.name }

// Read blocks until at least one byte has crossed, the read deadline passes
// (os.ErrDeadlineExceeded, a net.Error with Timeout() true) or this Port is
// closed (ErrClosed). As with net.Conn, a Read past the deadline fails even
// if bytes are waiting. Closing the other end never ends a Read.
func (p *Port) Read(b []byte) (int, error) {
	l := p.in
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.rclosed {
			return 0, ErrClosed
		}
		expired := p.rdl.wait()
		if isClosed(expired) {
			return 0, os.ErrDeadlineExceeded
		}
		now := time.Now()
		l.advance(now)
		if l.rx.len() > 0 || len(b) == 0 {
			n := l.rx.read(b)
			l.stats.Read += int64(n)
			if n > 0 {
				l.roomFreed(now)
			}
			return n, nil
		}
		ready := l.rxReady.wait()
		l.readWaiters++
		l.wake()
		l.mu.Unlock()
		select {
		case <-ready:
		case <-expired:
		}
		l.mu.Lock()
		l.readWaiters--
	}
}

// Write queues b for the wire. It blocks while the transmit FIFO is full, so
// it returns once all but at most TxBuffer bytes of b have started across
// (or, with flow control, while the reader's buffer is full). After Close of
// this Port it returns the count accepted so far and ErrClosed. While the
// Port is silent, Write discards b and returns len(b).
func (p *Port) Write(b []byte) (int, error) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	l := p.out
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wclosed {
		return 0, ErrClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	if l.silent {
		l.stats.Written += int64(len(b))
		l.stats.Dropped += int64(len(b))
		return len(b), nil
	}
	now := time.Now()
	l.advance(now)
	if l.tx.len() == 0 {
		l.startWire(now)
	}
	n := l.tx.write(b)
	l.stats.Written += int64(n)
	if n < len(b) {
		l.pending = b[n:]
	}
	if !l.paced() {
		l.advance(now)
	} else if l.pending != nil || l.readWaiters > 0 {
		l.wake()
	}
	for l.pending != nil && !l.wclosed {
		ready := l.txReady.wait()
		l.mu.Unlock()
		<-ready
		l.mu.Lock()
	}
	if l.wclosed {
		n := len(b) - len(l.pending)
		l.pending = nil
		return n, ErrClosed
	}
	return len(b), nil
}

// Close closes this end: its blocked Reads and Writes return ErrClosed,
// bytes it had queued or received are discarded, and its pacing goroutine
// stops. The other end is not told; it just stops receiving. Close is
// idempotent and always returns nil.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.out.closeWriter()
		p.in.closeReader()
		p.rdl.stop()
	})
	return nil
}

// SetReadDeadline sets the deadline for pending and future Reads; the zero
// time means none. A Read past the deadline returns os.ErrDeadlineExceeded.
func (p *Port) SetReadDeadline(t time.Time) error {
	p.rdl.set(t)
	return nil
}

// Stats returns the counters of the direction this Port writes.
func (p *Port) Stats() LineStats { return p.out.snapshot() }

// RxStats returns the counters of the direction this Port reads.
func (p *Port) RxStats() LineStats { return p.in.snapshot() }

// SetSilent makes this end stop transmitting (a rebooting or unplugged
// device) or resume. While silent, the bytes it writes, and those already in
// its transmit FIFO, are discarded and counted as Dropped.
func (p *Port) SetSilent(silent bool) {
	l := p.out
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance(time.Now())
	l.silent = silent
	if !silent {
		return
	}
	l.discardTx()
	if l.pending != nil {
		l.stats.Written += int64(len(l.pending))
		l.stats.Dropped += int64(len(l.pending))
		l.pending = nil
		l.txReady.broadcast()
	}
}

// Flush discards the bytes received but not yet read, as a rebooting MCU
// loses its receive buffer. Bytes still on the wire arrive afterwards.
func (p *Port) Flush() {
	l := p.in
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.advance(now)
	if l.rx.len() == 0 {
		return
	}
	l.stats.Discarded += int64(l.rx.len())
	l.rx.reset()
	l.roomFreed(now)
}

// SetBaud changes this end's UART rate, as a real MCU or adapter does: its
// writes cross at the new rate, and it hears the other end correctly only
// while both ends use the same rate (otherwise bytes arrive as garbage,
// counted in LineStats.Garbled). Only paced lines can change rate.
func (p *Port) SetBaud(baud int) error {
	if baud <= 0 {
		return fmt.Errorf("uartemu: invalid baud %d", baud)
	}
	if !p.out.paced() || !p.in.paced() {
		return fmt.Errorf("uartemu: an unpaced line has no baud to change")
	}
	now := time.Now()
	p.out.mu.Lock()
	p.out.setWriterBaud(uint64(baud), now)
	p.out.mu.Unlock()
	p.in.mu.Lock()
	p.in.advance(now) // bytes already crossed were heard at the old rate
	p.in.readerBaud = uint64(baud)
	p.in.mu.Unlock()
	return nil
}

// Baud returns the rate this end sends at (0 when unpaced).
func (p *Port) Baud() int {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return int(p.out.clock.baud)
}

// SetFlowControl turns this end's RTS/CTS on or off at run time, as a baud
// switch may (docs/protocol.md §5.7). A direction is flow-controlled only
// while both its ends use RTS/CTS.
func (p *Port) SetFlowControl(on bool) {
	now := time.Now()
	p.out.mu.Lock()
	p.out.setFlow(true, on, now)
	p.out.mu.Unlock()
	p.in.mu.Lock()
	p.in.setFlow(false, on, now)
	p.in.mu.Unlock()
}

// FlowControl reports whether this end uses RTS/CTS.
func (p *Port) FlowControl() bool {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.writerCTS
}
