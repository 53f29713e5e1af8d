package uartemu

import (
	"sync"
	"time"
)

// line is one direction of the cable: the writer's transmit FIFO, the wire
// and the reader's receive buffer. Everything below mu is guarded by it.
//
// The wire clock: sent bytes have finished crossing since epoch, so the wire
// is busy until epoch + durOf(sent). Bytes in tx cross as the clock allows;
// when tx runs dry the wire idles, and the next Write restarts the clock
// (see startWire).
type line struct {
	cfg   Line
	clock wireClock // zero baud when unpaced
	inj   *injector

	kick chan struct{} // cap 1: wakes the pacing goroutine to re-plan
	stop chan struct{} // closed when the writer closes
	done chan struct{} // closed when the pacing goroutine returns

	mu      sync.Mutex
	tx      ring   // transmit FIFO at the writing end
	pending []byte // rest of a blocked Write that does not fit in tx yet
	rx      ring   // receive buffer at the reading end
	scratch []byte // bytes on their way across, one chunk at a time

	epoch   time.Time
	sent    int64
	stalled bool // flow control holds the wire: rx was full
	// lag is how late the pacing goroutine last released the blocked
	// writer: real time minus the virtual time tx had room. Until the wire
	// idles, the writer's Writes count as that much earlier, so the
	// emulator's own timer latency never leaves the wire idle; the price
	// is that bytes may arrive up to lag (≤ maxLag) sooner after their
	// Write than on a real line, while the total never beats Baud/10.
	lag time.Duration

	silent      bool
	wclosed     bool
	rclosed     bool
	readWaiters int
	rxReady     signal // broadcast when rx gains bytes or the reader closes
	txReady     signal // broadcast when pending is absorbed or the writer closes/silences

	// flow is RTS/CTS in force: the writer obeys CTS and the reader drives
	// RTS (both ends configured for it). It starts as cfg.FlowControl.
	flow, writerCTS, readerRTS bool

	// readerBaud is the rate the reading end listens at; bytes sent at
	// another rate arrive as garbage.
	readerBaud uint64
	garble     uint64 // xorshift state for that garbage

	stats LineStats
}

func newLine(cfg Line, stream uint64) *line {
	cfg = cfg.withDefaults()
	l := &line{
		cfg:     cfg,
		clock:   wireClock{baud: uint64(cfg.Baud)},
		inj:     newInjector(cfg, stream),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		tx:      newRing(cfg.TxBuffer),
		rx:      newRing(cfg.RxBuffer),
		scratch: make([]byte, min(cfg.TxBuffer, 4096)),
		epoch:   time.Now(),

		readerBaud: uint64(cfg.Baud),
		flow:       cfg.FlowControl,
		writerCTS:  cfg.FlowControl,
		readerRTS:  cfg.FlowControl,
		garble:     0x9e3779b97f4a7c15 ^ stream,
	}
	if l.paced() {
		go l.pace()
	} else {
		close(l.done)
	}
	return l
}

func (l *line) paced() bool { return l.cfg.Baud > 0 }

// wake nudges the pacing goroutine to re-plan its next wake-up.
func (l *line) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// pace is the pacing goroutine of a paced line. It only exists to move bytes
// when somebody is waiting for them: a blocked reader or a blocked writer.
// Bytes nobody waits for cross lazily, at the next look.
func (l *line) pace() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		l.mu.Lock()
		now := time.Now()
		l.advance(now)
		at, ok := l.nextWake(now)
		l.mu.Unlock()
		if !ok {
			select {
			case <-l.kick:
			case <-l.stop:
				return
			}
			continue
		}
		timer.Reset(at.Sub(now))
		select {
		case <-timer.C:
		case <-l.kick:
			timer.Stop()
		case <-l.stop:
			timer.Stop()
			return
		}
	}
}

// nextWake returns when the pacing goroutine has work: the next byte for a
// waiting reader, or room in tx for a blocked writer.
func (l *line) nextWake(now time.Time) (time.Time, bool) {
	if l.wclosed || l.tx.len() == 0 || l.stalled {
		return time.Time{}, false
	}
	var at time.Time
	ok := false
	if l.readWaiters > 0 && !l.rclosed {
		at = l.epoch.Add(l.clock.durOf(l.sent + 1))
		if earliest := now.Add(minTick); at.Before(earliest) {
			at = earliest
		}
		ok = true
	}
	if l.pending != nil {
		// The writer is released once tx has room for all of pending.
		need := int64(l.tx.len() + len(l.pending) - l.tx.cap())
		if release := l.epoch.Add(l.clock.durOf(l.sent + need)); !ok || release.Before(at) {
			at, ok = release, true
		}
	}
	return at, ok
}

// advance moves every byte that has finished crossing by now from tx to rx,
// refilling tx from a blocked writer's pending bytes as it drains.
func (l *line) advance(now time.Time) {
	for !l.wclosed && l.tx.len() > 0 {
		n := l.tx.len()
		if l.paced() {
			due := l.clock.bytesIn(now.Sub(l.epoch)) - l.sent
			if due <= 0 {
				return
			}
			n = int(min(int64(n), due))
		}
		if l.flow && !l.rclosed {
			room := l.rx.free()
			if room == 0 {
				l.stalled = true
				return
			}
			n = min(n, room)
		}
		n = min(n, len(l.scratch))

		need := len(l.pending) - l.tx.free() // bytes to cross before pending fits
		sentBefore := l.sent
		l.cross(n)
		if l.paced() {
			l.sent += int64(n)
		}
		if l.pending != nil {
			m := l.tx.write(l.pending)
			l.stats.Written += int64(m)
			l.pending = l.pending[m:]
			if len(l.pending) == 0 {
				l.pending = nil
				l.txReady.broadcast()
				if l.paced() {
					room := l.epoch.Add(l.clock.durOf(sentBefore + int64(need)))
					l.lag = min(max(now.Sub(room), 0), maxLag)
				}
			}
		}
	}
}

// cross takes n bytes off tx and puts them through the wire into rx.
func (l *line) cross(n int) {
	buf := l.scratch[:n]
	l.tx.read(buf)
	if l.readerBaud != l.clock.baud {
		// A UART listening at the wrong rate samples noise, not bytes.
		for i := range buf {
			l.garble ^= l.garble << 13
			l.garble ^= l.garble >> 7
			l.garble ^= l.garble << 17
			buf[i] = byte(l.garble)
		}
		if !l.rclosed {
			l.stats.Garbled += int64(n)
		}
	}
	if l.rclosed {
		for _, b := range buf {
			l.inj.pass(b) // keep the error sequence independent of the reader
		}
		l.stats.Dropped += int64(n)
		return
	}
	if !l.inj.enabled {
		m := l.rx.write(buf)
		l.stats.Delivered += int64(m)
		l.stats.Overflow += int64(n - m)
		if m > 0 {
			l.rxReady.broadcast()
		}
		return
	}
	out := buf[:0] // in place: out never overtakes the byte being read
	room := l.rx.free()
	for _, b := range buf {
		v, f := l.inj.pass(b)
		if f == fateDropped {
			l.stats.Dropped++
			continue
		}
		if room == 0 {
			l.stats.Overflow++
			continue
		}
		room--
		out = append(out, v)
		switch f {
		case fateCorrupted:
			l.stats.Corrupted++
		case fateBurst:
			l.stats.BurstBytes++
		}
	}
	l.rx.write(out)
	l.stats.Delivered += int64(len(out))
	if len(out) > 0 {
		l.rxReady.broadcast()
	}
}

// startWire is called when bytes are written into an empty FIFO. If the
// writer is prompt, allowing for the lateness the emulator itself caused it
// (lag), the wire carries on without a gap; otherwise it went idle and its
// clock restarts now, never earlier, so an idle line never gets a burst.
func (l *line) startWire(now time.Time) {
	if !l.paced() {
		return
	}
	if free := l.epoch.Add(l.clock.durOf(l.sent)); free.Before(now.Add(-l.lag)) {
		l.epoch, l.sent, l.lag = now, 0, 0
	}
}

// roomFreed is called after rx lost bytes (Read, Flush, reader Close): a
// stalled wire resumes now, as RTS is raised again.
func (l *line) roomFreed(now time.Time) {
	if l.stalled {
		l.stalled = false
		if l.paced() {
			l.lag = 0
			if free := l.epoch.Add(l.clock.durOf(l.sent)); free.Before(now) {
				l.epoch, l.sent = now, 0
			}
		}
	}
	if l.paced() {
		l.wake()
	} else {
		l.advance(now)
	}
}

// setWriterBaud changes the rate the writing end sends at. Bytes already
// crossed keep their timing; the rest go at the new rate from the moment
// the wire is free (or now, if it idles).
func (l *line) setWriterBaud(baud uint64, now time.Time) {
	l.advance(now)
	free := l.epoch.Add(l.clock.durOf(l.sent))
	if free.Before(now) {
		free = now
	}
	l.epoch, l.sent, l.lag = free, 0, 0
	l.clock = wireClock{baud: baud} // cfg stays as created: it decides paced()
	l.wake()
}

// setFlow records one end's RTS/CTS setting; flow control holds only when
// both ends use it. A wire released from flow control resumes at once.
func (l *line) setFlow(writer bool, on bool, now time.Time) {
	l.advance(now)
	if writer {
		l.writerCTS = on
	} else {
		l.readerRTS = on
	}
	l.flow = l.writerCTS && l.readerRTS
	if !l.flow && l.stalled {
		l.roomFreed(now)
	}
	l.wake()
}

// discardTx throws away everything queued at the writing end.
func (l *line) discardTx() {
	l.stats.Dropped += int64(l.tx.len())
	l.tx.reset()
}

// snapshot returns the counters as of now.
func (l *line) snapshot() LineStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance(time.Now())
	s := l.stats
	s.Bursts = l.inj.bursts
	s.Queued = int64(l.tx.len())
	s.Buffered = int64(l.rx.len())
	return s
}

// closeWriter ends the writing side: queued bytes are dropped, a blocked
// Write returns, and the pacing goroutine stops before closeWriter returns.
func (l *line) closeWriter() {
	l.mu.Lock()
	if l.wclosed {
		l.mu.Unlock()
		return
	}
	l.advance(time.Now())
	l.wclosed = true
	l.discardTx()
	l.txReady.broadcast()
	l.mu.Unlock()
	if l.paced() {
		close(l.stop)
	}
	<-l.done
}

// closeReader ends the reading side: buffered bytes are discarded, blocked
// Reads return, and later bytes vanish at the closed end.
func (l *line) closeReader() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rclosed {
		return
	}
	now := time.Now()
	l.advance(now)
	l.rclosed = true
	l.stats.Discarded += int64(l.rx.len())
	l.rx.reset()
	l.rxReady.broadcast()
	l.roomFreed(now)
}

// signal is a broadcast to goroutines waiting under a mutex: wait returns a
// channel that the next broadcast closes. The owner's mutex guards it.
type signal struct {
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
