package socks5

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Server is a SOCKS5 server. Create it with New, run it with Serve.
type Server struct {
	cfg   Config
	log   zerolog.Logger
	stats counters

	// ctx is the parent of every connection's context; cancel cuts them
	// all (Close, or Shutdown running out of time).
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	closing   bool          // Shutdown or Close was called
	done      chan struct{} // closed when closing becomes true
	conns     sync.WaitGroup
}

// New returns a Server for cfg, with defaults filled in.
func New(cfg Config) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	cfg = cfg.withDefaults()
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		done:      make(chan struct{}),
	}
}

// Serve accepts client connections on ln and serves each in its own
// goroutine. It blocks until ln fails or the server is shut down, closes
// ln, and returns nil after Shutdown or Close, otherwise the Accept error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			if !temporary(err) {
				return err
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("socks5: accept")
			t := time.NewTimer(backoff)
			select {
			case <-s.done:
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		s.stats.accepted.Add(1)
		release, ok := s.cfg.Admit()
		if !ok {
			s.stats.rejected.Add(1)
			s.log.Debug().Stringer("client", c.RemoteAddr()).Msg("socks5: over the client limit, closed")
			c.Close()
			continue
		}
		if release == nil {
			release = func() {}
		}
		s.start(c, release)
	}
}

// temporary reports whether an Accept error is worth retrying: out of file
// descriptors, a connection aborted before it was accepted, a timeout.
func temporary(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || (errors.As(err, &ne) && ne.Timeout())
}

// start serves c in a new goroutine, unless the server is closing.
func (s *Server) start(c net.Conn, release func()) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		release()
		return
	}
	s.conns.Add(1)
	s.stats.active.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.conns.Done()
		defer s.stats.active.Add(-1)
		defer release()
		s.serveConn(c)
	}()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// stopAccepting marks the server closing and closes its listeners.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
}

// Shutdown stops accepting and lets the client connections finish until
// ctx is done; then it closes them and returns ctx.Err(). It returns after
// every connection goroutine has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	idle := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-idle
		return ctx.Err()
	}
}

// Close stops accepting, closes every client connection and what was
// opened for it, and waits for their goroutines.
func (s *Server) Close() error {
	s.stopAccepting()
	s.cancel()
	s.conns.Wait()
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// session is one client connection, owned by the goroutine in serveConn.
type session struct {
	srv  *Server
	ctx  context.Context // cancelled when the connection ends or the server cuts it
	conn net.Conn
	rec  *recordingReader
	br   *bufio.Reader // reads conn through rec; holds bytes sent after the request
	log  zerolog.Logger
}

// serveConn runs one client connection to its end and closes it.
func (s *Server) serveConn(c net.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The server cutting the connection (Close, Shutdown timeout) closes
	// the client side; everything else follows from there or from ctx.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
	}()
	rec := &recordingReader{r: c}
	ss := &session{
		srv:  s,
		ctx:  ctx,
		conn: c,
		rec:  rec,
		br:   bufio.NewReaderSize(rec, handshakeBuffer),
		log:  s.log.With().Stringer("client", c.RemoteAddr()).Logger(),
	}
	ss.serve()
}
