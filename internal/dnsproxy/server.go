package dnsproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/dns/dnsmessage"
)

// Server is a DNS forwarder. Create it with New, serve with Start, stop
// with Close.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	upstream netip.AddrPort // invalid without an upstream

	ctx    context.Context // cancelled by Close; parent of every lookup
	cancel context.CancelFunc
	slots  chan struct{} // one token per query being resolved
	stats  counters
	wg     sync.WaitGroup // every goroutine Start and the servers start

	mu      sync.Mutex
	cache   *cache
	flights map[key]*flight
	started bool
	closed  bool
	udp     *net.UDPConn
	tcp     *net.TCPListener
	conns   map[net.Conn]struct{}
}

// New returns a Server for cfg; it does not listen until Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	upstream, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		upstream: upstream,
		ctx:      ctx,
		cancel:   cancel,
		slots:    make(chan struct{}, cfg.MaxInflight),
		cache:    newCache(cfg.CacheSize),
		flights:  make(map[key]*flight),
		conns:    make(map[net.Conn]struct{}),
	}, nil
}

// Start binds UDP and TCP on addr ("127.0.0.1:53", "127.0.0.1:0") and
// serves both in goroutines until Close. With port 0 both get the same
// port: UDP binds first, TCP takes the port UDP got. Bind errors are
// returned, and Start may be called again after one.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case s.started:
		return ErrStarted
	}
	udp, tcp, err := listen(addr)
	if err != nil {
		return err
	}
	s.started, s.udp, s.tcp = true, udp, tcp
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	s.log.Info().Stringer("addr", udp.LocalAddr()).Bool("upstream", s.upstream.IsValid()).Msg("dns proxy listening on udp and tcp")
	return nil
}

// listen binds UDP on addr and TCP on the address UDP got.
func listen(addr string) (*net.UDPConn, *net.TCPListener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "" || port == "0" {
		tries = bindRetries
	}
	for i := 0; ; i++ {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		udp, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, nil, err
		}
		la := udp.LocalAddr().(*net.UDPAddr)
		tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: la.IP, Port: la.Port, Zone: la.Zone})
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if i+1 >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
}

// Addr returns the UDP address the server listens on, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr returns the TCP address the server listens on, nil before
// Start. Its port is Addr's.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Close stops serving: it cancels lookups in flight, closes the sockets
// and every TCP connection, and waits for every goroutine. It may be
// called more than once, also without Start.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.cancel()
		if s.udp != nil {
			s.udp.Close()
			s.tcp.Close()
		}
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// dispatch resolves q in a goroutine counted by wg and sends the reply,
// or sends SERVFAIL at once if MaxInflight queries are being resolved.
func (s *Server) dispatch(q *query, wg *sync.WaitGroup, send func([]byte)) {
	select {
	case s.slots <- struct{}{}:
	default:
		s.stats.overloaded.Add(1)
		s.log.Debug().Msg("too many queries in flight; SERVFAIL")
		send(s.reply(q, dnsmessage.RCodeServerFailure, nil, 0))
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		reply := s.finish(s.ctx, q)
		<-s.slots
		send(reply)
	}()
}

// dropped counts a packet that gets no reply.
func (s *Server) dropped(r dropReason, from net.Addr) {
	s.stats.drops[r].Add(1)
	s.log.Debug().Str("reason", r.String()).Stringer("from", from).Msg("dropped packet")
}

// serveUDP reads queries until the socket is closed.
func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, tcpMaxSize)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			s.log.Debug().Err(err).Msg("udp read")
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(readErrorBackoff):
			}
			continue
		}
		send := func(msg []byte) {
			if _, err := s.udp.WriteToUDPAddrPort(msg, from); err != nil {
				s.log.Debug().Err(err).Msg("udp write")
			}
		}
		reply, q, drop := s.begin(bytes.Clone(buf[:n]), false, time.Now())
		switch {
		case drop != dropNone:
			s.dropped(drop, net.UDPAddrFromAddrPort(from))
		case reply != nil:
			send(reply)
		default:
			s.dispatch(q, &s.wg, send)
		}
	}
}

// serveTCP accepts connections until the listener is closed.
func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			s.log.Debug().Err(err).Msg("tcp accept")
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(readErrorBackoff):
			}
			continue
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.cfg.MaxTCPConns {
			s.mu.Unlock()
			s.log.Debug().Stringer("from", c.RemoteAddr()).Msg("too many tcp connections; closing")
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn reads length-prefixed queries from c until it is idle for
// TCPIdleTimeout, ends, or sends something that is not a DNS message.
// Queries are resolved concurrently and answered as they are resolved
// (RFC 7766 §6.2.1.1); the connection closes when the last is answered.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	var (
		pending sync.WaitGroup
		wmu     sync.Mutex
	)
	defer func() {
		pending.Wait()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	send := func(msg []byte) {
		out := make([]byte, 2+len(msg))
		binary.BigEndian.PutUint16(out, uint16(len(msg)))
		copy(out[2:], msg)
		wmu.Lock()
		defer wmu.Unlock()
		c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := c.Write(out); err != nil {
			// A client that does not read its replies loses the
			// connection rather than holding the reader.
			s.log.Debug().Err(err).Msg("tcp write")
			c.Close()
		}
	}
	var prefix [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := io.ReadFull(c, prefix[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(prefix[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		reply, q, drop := s.begin(msg, true, time.Now())
		switch {
		case drop != dropNone:
			s.dropped(drop, c.RemoteAddr())
			return
		case reply != nil:
			send(reply)
		default:
			s.dispatch(q, &pending, send)
		}
	}
}
