package seedv3

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// Device emulates an ESP32 running the seed's v3 firmware, with real
// sockets on this machine. It reads frames from its end of the line and
// runs their ops one at a time in its loop goroutine; a blocking op
// (connect, recv, accept, recvfrom, dns) blocks the loop up to its
// timeout, as on the real board, while further frames wait in the line's
// receive buffer.
//
// Like the firmware it ACKs every REQ (and RESP) it receives, keeps the
// last 16 RESP frames keyed by seq and answers a repeated REQ from that
// cache instead of running it again, drops a cached RESP when its ACK
// arrives, numbers sockets 1..1024 (wrapping), and writes tuples with
// major type 6 (addresses in dns, sock_accept and sock_recvfrom results,
// and wifi_status's ifconfig).
//
// Choices where the reference is silent: sock_recv that times out answers
// {data: b"", n: 0, eof: false}; sock_accept and sock_recvfrom that time
// out answer their error code with detail "[Errno 110] ETIMEDOUT" and
// keep the socket; a connect or sendto whose host does not resolve answers
// dns_error; ping echoes args["echo"] (text) in "echo"; error details are
// written as MicroPython prints an OSError ("[Errno 111] ECONNREFUSED").
//
// Concurrency: the loop goroutine owns the RESP cache and the op state; a
// mutex guards the socket table so that Reboot and Close, from other
// goroutines, can close the sockets and so interrupt a blocking op.
type Device struct {
	rw  io.ReadWriteCloser
	cfg DeviceConfig
	log zerolog.Logger

	frames chan rxFrame  // reader → loop
	kick   chan struct{} // Reboot → loop, capacity 1
	done   chan struct{} // closed by Close
	once   sync.Once
	wg     sync.WaitGroup

	mu      sync.Mutex
	socks   map[int64]*devSock
	lastSID int64
	ctx     context.Context // the current boot; canceled by Reboot and Close
	cancel  context.CancelFunc
	reboots []chan struct{} // Reboot calls the loop has not handled yet
	closed  bool

	// Owned by the loop.
	cache     map[uint16][]byte // seq → SLIP-encoded RESP
	order     []uint16          // cached seqs, oldest first
	bootUntil time.Time         // silent until then
	bootAt    time.Time         // origin of t_ms
	rbuf      []byte
	out       []byte

	statsMu sync.Mutex
	stats   DeviceStats
}

// devSock is one socket of the emulated device.
type devSock struct {
	id      int64
	typ     int64 // sockTypeStream or sockTypeDgram
	family  int64
	timeout *time.Duration // sock_settimeout; nil: blocking
	bind    string         // sock_bind address of a stream socket
	conn    net.Conn       // a connected stream, maybe a *tls.Conn
	ln      net.Listener
	pc      net.PacketConn
}

func (s *devSock) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
}

// NewDevice starts an emulated seed device on rw, the device end of a
// serial line. Close stops it, closes its sockets and closes rw.
func NewDevice(rw io.ReadWriteCloser, cfg DeviceConfig) (*Device, error) {
	if rw == nil {
		return nil, fmt.Errorf("seedv3: NewDevice: no port")
	}
	cfg = cfg.withDefaults()
	d := &Device{
		rw:     rw,
		cfg:    cfg,
		log:    cfg.Logger,
		frames: make(chan rxFrame, 4),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		socks:  make(map[int64]*devSock),
		cache:  make(map[uint16][]byte),
		bootAt: time.Now(),
	}
	d.stats.Executed = map[string]uint64{}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(2)
	go d.read()
	go d.loop()
	return d, nil
}

// Close stops the device, closes its sockets and the port. It is
// idempotent.
func (d *Device) Close() error {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.cancel()
		d.closeAllLocked()
		d.mu.Unlock()
		close(d.done)
		d.rw.Close()
	})
	d.wg.Wait()
	return nil
}

// Reboot emulates a reset: it closes every socket, interrupting the op in
// progress (whose RESP is never sent), clears the RESP cache, keeps the
// device silent for BootTime (frames that arrive meanwhile are lost) and
// restarts the uptime that ping reports. It returns once the device is
// down, before it has booted.
func (d *Device) Reboot() error {
	ack := make(chan struct{})
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return net.ErrClosed
	}
	d.cancel()
	d.closeAllLocked()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.reboots = append(d.reboots, ack)
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	select {
	case <-ack:
		return nil
	case <-d.done:
		return net.ErrClosed
	}
}

// Stats returns a snapshot of the counters.
func (d *Device) Stats() DeviceStats {
	d.mu.Lock()
	open := len(d.socks)
	d.mu.Unlock()
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	s := d.stats.clone()
	s.Open = open
	return s
}

func (d *Device) count(f func(s *DeviceStats)) {
	d.statsMu.Lock()
	f(&d.stats)
	d.statsMu.Unlock()
}

func (d *Device) closeAllLocked() {
	for id, s := range d.socks {
		s.close()
		delete(d.socks, id)
	}
}

// read decodes frames from the port for the loop.
func (d *Device) read() {
	defer d.wg.Done()
	dec := slip.NewDecoder(d.cfg.MaxFrame)
	buf := make([]byte, 4096)
	emit := func(b []byte) {
		h, p, err := frame.ParseV3(b)
		if err != nil {
			d.count(func(s *DeviceStats) { s.BadFrames++ })
			return
		}
		select {
		case d.frames <- rxFrame{h: h, payload: append([]byte(nil), p...)}:
		case <-d.done:
		}
	}
	drop := func(string) { d.count(func(s *DeviceStats) { s.BadFrames++ }) }
	for {
		n, err := d.rw.Read(buf)
		dec.Feed(buf[:n], emit, drop)
		if err != nil {
			return
		}
	}
}

// loop handles frames one at a time.
func (d *Device) loop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.done:
			return
		case <-d.kick:
			d.doReboots()
		case f := <-d.frames:
			if d.doReboots() || time.Now().Before(d.bootUntil) {
				d.count(func(s *DeviceStats) { s.Dropped++ })
				continue
			}
			d.handle(f)
		}
	}
}

// doReboots finishes the Reboot calls made since the last look, and
// reports whether there were any.
func (d *Device) doReboots() bool {
	d.mu.Lock()
	acks := d.reboots
	d.reboots = nil
	d.mu.Unlock()
	if len(acks) == 0 {
		return false
	}
	clear(d.cache)
	d.order = d.order[:0]
	d.bootAt = time.Now() // ticks_ms counts from the reset, through the boot
	d.bootUntil = d.bootAt.Add(d.cfg.BootTime)
	d.lastSIDReset()
	for _, a := range acks {
		close(a)
	}
	d.count(func(s *DeviceStats) { s.Reboots += uint64(len(acks)) })
	d.log.Debug().Msg("seedv3 device: rebooted")
	return true
}

func (d *Device) lastSIDReset() {
	d.mu.Lock()
	d.lastSID = 0
	d.mu.Unlock()
}

// handle answers one frame.
func (d *Device) handle(f rxFrame) {
	switch f.h.Type {
	case frame.V3Ack:
		d.count(func(s *DeviceStats) { s.AcksRecv++ })
		if _, ok := d.cache[f.h.Seq]; ok {
			delete(d.cache, f.h.Seq)
			for i, s := range d.order {
				if s == f.h.Seq {
					d.order = append(d.order[:i], d.order[i+1:]...)
					break
				}
			}
		}
		return
	case frame.V3Resp:
		d.send(frame.V3Ack, f.h.Seq, nil)
		return
	}
	d.send(frame.V3Ack, f.h.Seq, nil)
	if resp, ok := d.cache[f.h.Seq]; ok {
		d.count(func(s *DeviceStats) { s.CacheHits++ })
		d.write(resp)
		return
	}
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	payload := d.execute(ctx, f.payload)
	if ctx.Err() != nil {
		return // rebooted or closed while running: the RESP is lost
	}
	wire := slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Resp, Seq: f.h.Seq}, payload))
	if _, dup := d.cache[f.h.Seq]; !dup {
		d.order = append(d.order, f.h.Seq)
	}
	d.cache[f.h.Seq] = wire
	if len(d.order) > respCacheLen {
		delete(d.cache, d.order[0])
		d.order = append(d.order[:0], d.order[1:]...)
	}
	d.write(wire)
}

func (d *Device) send(t frame.V3Type, seq uint16, payload []byte) {
	d.out = slip.AppendEncode(d.out[:0], frame.AppendV3(nil, frame.V3Header{Type: t, Seq: seq}, payload))
	if t == frame.V3Ack {
		d.count(func(s *DeviceStats) { s.AcksSent++ })
	}
	d.write(d.out)
}

func (d *Device) write(b []byte) {
	if time.Now().Before(d.bootUntil) {
		return
	}
	d.rw.Write(b)
}

// uptime returns the milliseconds since the last boot.
func (d *Device) uptime() int64 {
	return max(0, time.Since(d.bootAt).Milliseconds())
}
