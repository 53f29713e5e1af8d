package socks5

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// bind carries out BIND (RFC 1928 §4): listen on the device (the request's
// address is only a hint), reply with the listener's address, accept one
// connection within BindTimeout, reply with the peer's address, then relay
// both ways like CONNECT.
func (ss *session) bind(host string, port uint16) {
	cfg := &ss.srv.cfg
	dest := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if cfg.Listen == nil {
		ss.reject(cmdBind, repCommandNotSupported, dest, errors.New("no Listen configured"))
		return
	}
	if _, err := ss.allow(cmdBind, host, port); err != nil {
		ss.reject(cmdBind, replyFor(err), dest, err)
		return
	}
	ctx, cancel := context.WithTimeout(ss.ctx, cfg.ConnectTimeout)
	ln, err := cfg.Listen(ctx, "tcp", ":0")
	cancel()
	if err == nil && ln == nil {
		err = errors.New("no listener from Config.Listen")
	}
	if err != nil {
		ss.reject(cmdBind, replyFor(err), dest, err)
		return
	}
	defer ln.Close()
	if err := ss.reply(repSucceeded, ln.Addr()); err != nil {
		ss.done(cmdBind, repGeneralFailure, dest, err)
		return
	}

	peer, err, clientGone := ss.acceptOne(ln)
	ln.Close() // one connection only
	switch {
	case err != nil && clientGone:
		ss.done(cmdBind, repGeneralFailure, dest, err)
		return
	case err != nil:
		ss.reject(cmdBind, replyFor(err), dest, err)
		return
	}
	defer peer.Close()
	err = ss.reply(repSucceeded, peer.RemoteAddr())
	ss.done(cmdBind, repSucceeded, dest, err)
	if err != nil {
		return
	}
	ss.proxy(peer)
}

// errBindTimeout is BIND's wait running out; it is a timeout (reply 0x06).
var errBindTimeout error = bindTimeout{}

type bindTimeout struct{}

func (bindTimeout) Error() string   { return "socks5: no connection to the BIND listener in time" }
func (bindTimeout) Timeout() bool   { return true }
func (bindTimeout) Temporary() bool { return true }

// acceptOne waits for one connection on ln for up to BindTimeout. It
// stops early when the client hangs up (clientGone) or the session ends.
func (ss *session) acceptOne(ln net.Listener) (peer net.Conn, err error, clientGone bool) {
	ctx, cancel := context.WithTimeout(ss.ctx, ss.srv.cfg.BindTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	// Watch the client without consuming its bytes: Peek returns when it
	// hangs up, or when it sends something early (kept for the relay; from
	// then on only BindTimeout ends the wait).
	watched := make(chan error, 1)
	go func() {
		_, err := ss.br.Peek(1)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cancel()
		}
		watched <- err
	}()

	peer, err = ln.Accept()
	if err == nil && peer == nil {
		err = errors.New("no connection from Accept")
	}
	// Wake the watcher and wait for it, so that only the relay reads from
	// here on; a timeout error in bufio is not sticky.
	ss.conn.SetReadDeadline(time.Now())
	werr := <-watched
	ss.conn.SetReadDeadline(time.Time{})
	clientGone = ss.ctx.Err() != nil || (werr != nil && !errors.Is(werr, os.ErrDeadlineExceeded))

	switch {
	case err == nil && clientGone:
		peer.Close()
		return nil, errors.New("client left"), true
	case err != nil:
		if peer != nil {
			peer.Close()
		}
		if !clientGone && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = errBindTimeout
		}
		return nil, err, clientGone
	}
	return peer, nil, false
}
