package forward

import (
	"container/list"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// udpSession is one client address of a local UDP forward, with its own
// socket on the device. Its fields after done are guarded by Forward.mu.
type udpSession struct {
	client  netip.AddrPort
	log     zerolog.Logger
	release func()
	ctx     context.Context // cancelled when the session ends
	cancel  context.CancelFunc
	queue   chan []byte // datagrams for the device socket
	queued  atomic.Int64
	done    chan struct{} // closed when the session ends

	elem  *list.Element
	last  time.Time // last datagram either way
	dev   net.PacketConn
	ended bool
}

// readUDP reads the local socket until it is closed and hands each
// datagram to its client's session.
func (f *Forward) readUDP(pc *net.UDPConn) {
	defer f.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Debug().Err(err).Msg("read from the local UDP socket")
			continue
		}
		if n > maxDatagram {
			f.log.Debug().Int("len", n).Stringer("client", from).Msg("datagram too long for the device; dropped")
			continue
		}
		f.udpIn(from, buf[:n])
	}
}

// udpIn queues one datagram from client, making a session for a new
// client.
func (f *Forward) udpIn(client netip.AddrPort, p []byte) {
	var end func()
	defer func() {
		if end != nil {
			end()
		}
	}()
	f.mu.Lock()
	s := f.sess[client]
	if s != nil {
		s.last = time.Now()
		f.lru.MoveToFront(s.elem)
	} else {
		if f.state != stateRunning {
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		release, ok := f.admit(client.String())
		if !ok {
			return
		}
		f.mu.Lock()
		if f.state != stateRunning {
			f.mu.Unlock()
			release()
			return
		}
		if len(f.sess) >= f.cfg.MaxUDPClients {
			old := f.lru.Back().Value.(*udpSession)
			old.log.Debug().Msg("evicted: too many UDP clients")
			end = f.endSessionLocked(old)
		}
		s = f.newSessionLocked(client, release)
	}
	s.enqueue(p)
	f.mu.Unlock()
}

// enqueue copies p into the session's queue, or drops it when the queue
// is full, as a socket buffer would.
func (s *udpSession) enqueue(p []byte) {
	if s.queued.Load()+int64(len(p)) > udpQueueBytes {
		s.log.Debug().Msg("queue full; datagram dropped")
		return
	}
	select {
	case s.queue <- append([]byte(nil), p...):
		s.queued.Add(int64(len(p)))
	default:
		s.log.Debug().Msg("queue full; datagram dropped")
	}
}

// newSessionLocked remembers a new client and starts its goroutine.
func (f *Forward) newSessionLocked(client netip.AddrPort, release func()) *udpSession {
	s := &udpSession{
		client:  client,
		log:     f.log.With().Stringer("client", client).Logger(),
		release: release,
		queue:   make(chan []byte, udpQueueDatagrams),
		done:    make(chan struct{}),
		last:    time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(f.connCtx)
	s.elem = f.lru.PushFront(s)
	f.sess[client] = s
	f.accepted.Add(1)
	f.active.Add(1)
	f.wg.Add(1)
	go f.runSession(s)
	return s
}

// endSessionLocked forgets s. The caller runs the returned function
// after unlocking: it closes the device socket and releases the client.
func (f *Forward) endSessionLocked(s *udpSession) func() {
	if s.ended {
		return func() {}
	}
	s.ended = true
	delete(f.sess, s.client)
	f.lru.Remove(s.elem)
	f.active.Add(-1)
	close(s.done)
	s.cancel()
	if f.state == stateDraining && len(f.sess) == 0 {
		f.closeUDPLocked()
	}
	dev := s.dev
	return func() {
		if dev != nil {
			dev.Close()
		}
		s.release()
	}
}

// endSession is endSessionLocked for a caller that does not hold f.mu.
func (f *Forward) endSession(s *udpSession) {
	f.mu.Lock()
	end := f.endSessionLocked(s)
	f.mu.Unlock()
	end()
}

// closeUDPLocked closes the local UDP socket, which ends readUDP and the
// janitor.
func (f *Forward) closeUDPLocked() {
	if f.udp == nil {
		return
	}
	select {
	case <-f.udpEnd:
		return
	default:
	}
	f.udp.Close()
	close(f.udpEnd)
	f.listening.Store(false)
}

// runSession opens the client's device socket, starts the goroutine that
// reads it, and writes the client's datagrams to it until the session
// ends. When the socket cannot be opened the session ends at once, so the
// client's next datagram tries again.
func (f *Forward) runSession(s *udpSession) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, f.cfg.ConnectTimeout)
	dev, err := f.cfg.ListenPacket(ctx, "udp", ":0")
	cancel()
	if err != nil {
		f.failOpen(s.ctx, s.log, "open a UDP socket on the ESP32", err)
		f.endSession(s)
		return
	}
	f.mu.Lock()
	if s.ended {
		f.mu.Unlock()
		dev.Close()
		return
	}
	s.dev = dev
	f.wg.Add(1)
	f.mu.Unlock()
	go f.sessionDown(s, dev)
	s.log.Debug().Msg("UDP client added")

	for {
		select {
		case <-s.done:
			return
		case p := <-s.queue:
			s.queued.Add(-int64(len(p)))
			n, err := dev.WriteTo(p, f.target)
			if err != nil {
				// One datagram lost (too long, queue full on the link);
				// a dead socket ends the session from sessionDown.
				s.log.Debug().Err(err).Msg("write to the device socket")
				continue
			}
			f.bytesUp.Add(uint64(n))
		}
	}
}

// sessionDown passes what the device socket receives back to the client,
// until the socket is closed or fails.
func (f *Forward) sessionDown(s *udpSession, dev net.PacketConn) {
	defer f.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, _, err := dev.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Debug().Err(err).Msg("device socket failed; client forgotten")
			}
			f.endSession(s)
			return
		}
		f.mu.Lock()
		if !s.ended {
			s.last = time.Now()
			f.lru.MoveToFront(s.elem)
		}
		f.mu.Unlock()
		if _, err := f.udp.WriteToUDPAddrPort(buf[:n], s.client); err != nil {
			s.log.Debug().Err(err).Msg("write to the client")
			continue
		}
		f.bytesDown.Add(uint64(n))
	}
}

// udpJanitor forgets clients that have been quiet for UDPIdleTimeout
// (udpDrainQuiet during Shutdown), until the local socket closes.
func (f *Forward) udpJanitor() {
	defer f.wg.Done()
	t := time.NewTimer(f.cfg.UDPIdleTimeout)
	defer t.Stop()
	for {
		var ends []func()
		f.mu.Lock()
		limit := f.cfg.UDPIdleTimeout
		if f.state == stateDraining {
			limit = min(limit, udpDrainQuiet)
		}
		now := time.Now()
		wait := limit
		for e := f.lru.Back(); e != nil; e = f.lru.Back() {
			s := e.Value.(*udpSession)
			if idle := now.Sub(s.last); idle < limit {
				wait = limit - idle
				break
			}
			s.log.Debug().Msg("UDP client idle; forgotten")
			ends = append(ends, f.endSessionLocked(s))
		}
		f.mu.Unlock()
		for _, end := range ends {
			end()
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-f.kick:
		case <-f.udpEnd:
			return
		}
	}
}
