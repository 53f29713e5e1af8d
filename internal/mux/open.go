package mux

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// TLSOptions asks the device to wrap a TCP stream in TLS.
type TLSOptions struct {
	ServerName string // SNI and the name to verify; defaults to the host
	// Verify turns certificate verification on the device on or off. It
	// has no default on purpose: callers say what they want.
	Verify bool
}

// DialOptions tunes one OPEN.
type DialOptions struct {
	TLS            *TLSOptions
	ConnectTimeout time.Duration // how long the device tries; 0 = device default
}

// Dial opens a TCP stream to address ("host:port"); the device resolves
// names, so nothing leaks to the host's resolver.
func (s *Session) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	st, err := s.DialStream(ctx, network, address, DialOptions{})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// DialStream is Dial with options, returning the *Stream.
func (s *Session) DialStream(ctx context.Context, network, address string, o DialOptions) (*Stream, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var opts message.Options
	if o.TLS != nil {
		opts.TLS = true
		opts.SNI = o.TLS.ServerName
		if opts.SNI == "" {
			opts.SNI = host
		}
		opts.Verify = &o.TLS.Verify
	}
	if o.ConnectTimeout > 0 {
		opts.TimeoutMS = uint32(o.ConnectTimeout / time.Millisecond)
	}
	st, err := s.open(ctx, message.KindTCP, host, port, opts)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: Addr{Net: "tcp", Host: host, Port: port}, Err: err}
	}
	return st, nil
}

// OpenService opens one of the device's test endpoints ("echo",
// "discard", "source"; docs/protocol.md §7.14).
func (s *Session) OpenService(ctx context.Context, name string) (*Stream, error) {
	return s.open(ctx, message.KindService, name, 0, message.Options{})
}

// ListenPacket opens a UDP socket on the device bound to address
// ("" or ":0" for any).
func (s *Session) ListenPacket(ctx context.Context, network, address string) (*PacketConn, error) {
	host, port, err := splitOptional(address)
	if err != nil {
		return nil, err
	}
	st, err := s.open(ctx, message.KindUDP, host, port, message.Options{})
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return &PacketConn{st: st}, nil
}

// Listen opens a TCP listener on the device; accepted connections arrive
// as streams (docs/protocol.md §8.7).
func (s *Session) Listen(ctx context.Context, network, address string, backlog int) (*Listener, error) {
	host, port, err := splitOptional(address)
	if err != nil {
		return nil, err
	}
	opts := message.Options{Backlog: uint16(min(max(backlog, 0), 0xffff))}
	st, err := s.open(ctx, message.KindListen, host, port, opts)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return &Listener{st: st}, nil
}

func splitOptional(address string) (string, uint16, error) {
	if address == "" {
		return "", 0, nil
	}
	return splitHostPort(address)
}

// open sends OPEN and waits for OPEN_OK or RESET. It waits for a link
// session and for a free stream slot on the peer while ctx allows.
func (s *Session) open(ctx context.Context, kind message.Kind, host string, port uint16, opts message.Options) (*Stream, error) {
	if len(host) > 255 {
		return nil, fmt.Errorf("mux: host name too long")
	}
	if err := s.WaitUp(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrSessionClosed
		}
		if !s.up {
			s.mu.Unlock()
			return nil, ErrNotConnected
		}
		if s.ownOpen < int(s.peer.Peer.MaxStreams) && len(s.streams) < s.cfg.MaxStreams {
			break
		}
		ch := s.slotCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, &ResetError{Code: message.CodeLimit, Reason: "no free stream on the device"}
		}
		s.mu.Lock()
	}
	id := s.nextID
	s.nextID += 2
	st := s.newStreamLocked(id, kind, true)
	st.remote = Addr{Net: netOf(kind), Host: host, Port: port}
	s.queueLocked(message.Message{Type: message.TypeOpen, SID: id, Kind: kind, Host: host, Port: port,
		Window: st.window, Opts: opts})
	s.mu.Unlock()

	select {
	case <-st.openCh:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case st.state == stateOpen:
		return st, nil
	case st.err != nil:
		return nil, st.err
	}
	st.resetLocked(message.CodeOK, "open cancelled")
	if ctx.Err() == context.DeadlineExceeded {
		return nil, ErrTimeout
	}
	return nil, ctx.Err()
}

// PushAccept announces a connection accepted on listener ln (device side)
// and returns its stream. Data the host sends may arrive at once; what
// this side writes goes out after the host's OPEN_OK.
func (s *Session) PushAccept(ln *Stream, remote Addr) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.up:
		return nil, ErrNotConnected
	case ln.kind != message.KindListen || ln.state != stateOpen:
		return nil, ErrStreamClosed
	case len(s.streams) >= s.cfg.MaxStreams || s.ownOpen >= int(s.peer.Peer.MaxStreams):
		return nil, &ResetError{Code: message.CodeLimit, Reason: "too many streams"}
	}
	id := s.nextID
	s.nextID += 2
	st := s.newStreamLocked(id, message.KindTCP, true)
	st.pushed = true
	st.local = ln.local
	st.remote = remote
	s.queueLocked(message.Message{Type: message.TypeAccept, SID: id, Listener: ln.id, Host: remote.Host,
		Port: remote.Port, Window: st.window})
	return st, nil
}

// Listener is a TCP listener on the device.
type Listener struct{ st *Stream }

// Accept waits for the next connection the device accepted.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptStream() }

// AcceptStream is Accept returning the *Stream.
func (l *Listener) AcceptStream() (*Stream, error) {
	st := l.st
	s := st.s
	s.mu.Lock()
	for {
		if len(st.acceptQ) > 0 {
			c := st.acceptQ[0]
			st.acceptQ[0] = nil
			st.acceptQ = st.acceptQ[1:]
			s.mu.Unlock()
			return c, nil
		}
		if st.localClosed || st.err != nil {
			err := st.closedErr()
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		_ = wait(st.readCh, time.Time{})
		s.mu.Lock()
	}
}

// Close closes the listener on the device; queued connections are reset.
func (l *Listener) Close() error {
	s := l.st.s
	s.mu.Lock()
	for _, c := range l.st.acceptQ {
		c.resetLocked(message.CodeRefused, "listener closed")
	}
	l.st.acceptQ = nil
	s.mu.Unlock()
	return l.st.Close()
}

// Addr returns the address the device bound.
func (l *Listener) Addr() net.Addr { return l.st.LocalAddr() }
