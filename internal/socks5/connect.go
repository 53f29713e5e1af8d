package socks5

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/things-go/go-socks5/statute"
)

// handle carries out a parsed request.
func (ss *session) handle(req statute.Request) {
	host := req.DstAddr.FQDN
	if host == "" && len(req.DstAddr.IP) != 0 {
		host = req.DstAddr.IP.String()
	}
	port := uint16(req.DstAddr.Port)
	switch cmd := command(req.Command); cmd {
	case cmdConnect:
		ss.connect(host, port)
	case cmdBind:
		ss.bind(host, port)
	case cmdAssociate:
		ss.associate(req.DstAddr)
	}
}

// connect carries out CONNECT (RFC 1928 §4): dial through the device,
// reply with the connection's local address, then relay both ways.
func (ss *session) connect(host string, port uint16) {
	cfg := &ss.srv.cfg
	dest := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if cfg.Dial == nil {
		ss.reject(cmdConnect, repCommandNotSupported, dest, errors.New("no Dial configured"))
		return
	}
	if host == "" {
		ss.reject(cmdConnect, repGeneralFailure, dest, errors.New("empty host name"))
		return
	}
	address, err := ss.allow(cmdConnect, host, port)
	if err != nil {
		ss.reject(cmdConnect, replyFor(err), dest, err)
		return
	}
	ctx, cancel := context.WithTimeout(ss.ctx, cfg.ConnectTimeout)
	target, err := cfg.Dial(ctx, "tcp", address)
	cancel()
	if err == nil && target == nil {
		err = errors.New("no connection from Config.Dial")
	}
	if err != nil {
		ss.reject(cmdConnect, replyFor(err), dest, err)
		return
	}
	defer target.Close()
	var bound net.Addr
	if a, ok := target.LocalAddr().(*net.TCPAddr); ok {
		bound = a
	}
	err = ss.reply(repSucceeded, bound)
	ss.done(cmdConnect, repSucceeded, dest, err)
	if err != nil {
		return
	}
	ss.proxy(target)
}

// allow asks Config.Allow about a destination and returns the address to
// open.
func (ss *session) allow(cmd command, host string, port uint16) (string, error) {
	cfg := &ss.srv.cfg
	if cfg.Allow == nil {
		return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
	}
	ctx, cancel := context.WithTimeout(ss.ctx, cfg.ConnectTimeout)
	defer cancel()
	address, err := cfg.Allow(ctx, cmd.String(), host, port)
	if err != nil {
		return "", err
	}
	if address == "" {
		address = net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	return address, nil
}

// replyFor maps an error from Allow, Dial, Listen or ListenPacket to a
// reply code. The errnos are the ones the mux package's errors match.
func replyFor(err error) reply {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return repSucceeded
	case errors.Is(err, ErrDenied), errors.Is(err, syscall.EACCES):
		return repNotAllowed
	case errors.Is(err, syscall.ECONNREFUSED):
		return repConnectionRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return repHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN):
		return repNetworkUnreachable
	case errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &netErr) && netErr.Timeout():
		return repTTLExpired
	}
	return repGeneralFailure
}

type closeWriter interface{ CloseWrite() error }

var errNoHalfClose = errors.New("socks5: connection cannot half-close")

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// proxy relays between the client and target until both directions have
// reached EOF or one of them fails. An EOF on one side half-closes the
// other; an error, or a side that cannot half-close, ends both.
func (ss *session) proxy(target net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			ss.conn.Close()
			target.Close()
		})
	}
	up := make(chan error, 1)
	go func() {
		err := pipe(target, ss.br, &ss.srv.stats.bytesUp)
		if err != nil {
			closeBoth()
		}
		up <- err
	}()
	err := pipe(ss.conn, target, &ss.srv.stats.bytesDown)
	if err != nil {
		closeBoth()
	}
	if e := <-up; err == nil {
		err = e
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		ss.log.Debug().Err(err).Msg("socks5: relay ended")
	}
}

// pipe copies src to dst, counting the bytes written, and half-closes
// dst at EOF.
func pipe(dst net.Conn, src io.Reader, count *atomic.Uint64) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			count.Add(uint64(w))
			if werr != nil {
				return werr
			}
		}
		switch {
		case rerr == io.EOF:
			if cw, ok := dst.(closeWriter); ok {
				return cw.CloseWrite()
			}
			return errNoHalfClose
		case rerr != nil:
			return rerr
		}
	}
}
