package link

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// Upper is the layer the link carries: the mux. The link calls it from its
// loop goroutine only; no method may block.
type Upper interface {
	// Wake is signalled (non-blocking, capacity 1) when Fill may have
	// something new to send.
	Wake() <-chan struct{}
	// Fill appends the next DATA payload, at most max bytes, to dst. It
	// returns dst unchanged when there is nothing to send.
	Fill(dst []byte, max int) []byte
	// Deliver hands over one DATA payload, in order and exactly once per
	// session. p is only valid during the call. An error means the payload
	// could not be framed: the session ends (docs/protocol.md §7.15).
	Deliver(p []byte) error
	// Up reports a new session; Down reports its end (before any Up of the
	// next one). Down is also called once when the link stops.
	Up(s Session)
	Down(err error)
}

// Session describes an established session.
type Session struct {
	Local, Peer message.Hello
	Revision    uint
	MaxPayload  int // negotiated: what we send and accept
	Window      int // negotiated
}

// Link runs the protocol over one byte stream (a serial port).
type Link struct {
	rw  io.ReadWriteCloser
	cfg Config
	up  Upper
	log zerolog.Logger
	c   *counters

	rx     chan rxFrame
	line   chan lineChange // SetBaud, SetFlowControl to the loop
	tx     chan []byte     // capacity 1; written only when the writer is idle
	txDone chan struct{}   // the writer finished one frame
	done   chan struct{}

	errOnce sync.Once
	err     error
	wg      sync.WaitGroup
}

// rxFrame is one parsed frame handed from the reader to the loop.
type rxFrame struct {
	h       frame.Header
	payload []byte
	at      time.Time
}

// New starts a link over rw. Call Close to stop it; it closes rw.
func New(rw io.ReadWriteCloser, cfg Config, up Upper) (*Link, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Link{
		rw: rw, cfg: cfg, up: up, log: cfg.Logger, c: newCounters(),
		rx:     make(chan rxFrame, 64),
		line:   make(chan lineChange, 1),
		tx:     make(chan []byte, 1),
		txDone: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	lp := newLoop(l)
	l.wg.Add(3)
	go l.readLoop()
	go l.writeLoop()
	go func() {
		defer l.wg.Done()
		lp.run()
	}()
	return l, nil
}

// Close stops the link and waits for its goroutines.
func (l *Link) Close() error {
	l.fail(ErrClosed)
	l.wg.Wait()
	return nil
}

// Done is closed when the link has stopped.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link stopped (ErrClosed after Close), or nil.
func (l *Link) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Stats returns a snapshot of the counters.
func (l *Link) Stats() Stats { return l.c.snapshot() }

// lineChange is a new UART setting for the loop.
type lineChange struct {
	baud int   // 0: unchanged
	flow *bool // nil: unchanged
}

// SetBaud tells the link that its UART now runs at baud, after a switch
// (docs/protocol.md §5.7); the RTO floor depends on it.
func (l *Link) SetBaud(baud int) { l.setLine(lineChange{baud: baud}) }

// SetFlowControl tells the link whether RTS/CTS is now in force; loss
// handling depends on it (docs/protocol.md §6.5b).
func (l *Link) SetFlowControl(on bool) { l.setLine(lineChange{flow: &on}) }

func (l *Link) setLine(c lineChange) {
	select {
	case l.line <- c:
	case <-l.done:
	}
}

// fail records the first fatal error and stops everything.
func (l *Link) fail(err error) {
	l.errOnce.Do(func() {
		l.err = err
		close(l.done)
		l.rw.Close()
	})
}

func (l *Link) readLoop() {
	defer l.wg.Done()
	maxPayload := int(l.cfg.Hello.MaxPayload)
	dec := slip.NewDecoder(frame.MinLen + maxPayload)
	buf := make([]byte, 4096)
	drop := func(reason string) { l.c.drop(DropSlipLong) }
	emit := func(b []byte) {
		now := time.Now()
		if frame.Peek(b) == frame.V3Version {
			l.c.drop(DropSeedV3)
			return
		}
		h, payload, err := frame.Parse(b, maxPayload)
		if err != nil {
			reason := frame.Reason(err)
			l.c.drop(reason)
			l.log.Debug().Str("reason", reason).Int("len", len(b)).Msg("frame dropped")
			return
		}
		l.c.rxFrames.Add(1)
		f := rxFrame{h: h, at: now}
		if len(payload) > 0 {
			f.payload = append([]byte(nil), payload...)
		}
		select {
		case l.rx <- f:
		case <-l.done:
		}
	}
	for {
		n, err := l.rw.Read(buf)
		if n > 0 {
			l.c.rxBytes.Add(uint64(n))
			dec.Feed(buf[:n], emit, drop)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			l.fail(err)
			return
		}
		select {
		case <-l.done:
			return
		default:
		}
	}
}

func (l *Link) writeLoop() {
	defer l.wg.Done()
	for {
		select {
		case b := <-l.tx:
			if _, err := l.rw.Write(b); err != nil {
				l.fail(err)
				return
			}
			l.c.txFrames.Add(1)
			l.c.txBytes.Add(uint64(len(b)))
			select {
			case l.txDone <- struct{}{}:
			case <-l.done:
				return
			}
		case <-l.done:
			return
		}
	}
}

// newSessionID returns a random non-zero session id.
func newSessionID() uint32 {
	var b [4]byte
	for {
		_, _ = crand.Read(b[:])
		if id := binary.LittleEndian.Uint32(b[:]); id != 0 {
			return id
		}
	}
}
