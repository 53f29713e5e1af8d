package socks5

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/things-go/go-socks5/statute"
)

// recordingReader remembers the first error the client connection
// returned, because statute.ParseRequest wraps read errors with %v.
type recordingReader struct {
	r   io.Reader
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// serve runs the handshake under HandshakeTimeout, then the request.
func (ss *session) serve() {
	ss.conn.SetDeadline(time.Now().Add(ss.srv.cfg.HandshakeTimeout))
	req, ok := ss.handshake()
	if !ok {
		return
	}
	// The request is read: from here on the command's own timeouts apply.
	ss.conn.SetDeadline(time.Time{})
	ss.handle(req)
}

// handshake reads the greeting, authenticates and reads the request
// (RFC 1928 §3-4, RFC 1929). It answers and counts what it rejects, and
// returns ok=false when the connection is done.
func (ss *session) handshake() (req statute.Request, ok bool) {
	cfg := &ss.srv.cfg

	// Greeting: VER NMETHODS METHODS. The version is checked first, so
	// that a SOCKS4 or HTTP client is turned away without more reading.
	if !ss.expectByte(socksVersion, reasonBadVersion) {
		return req, false
	}
	mr, err := statute.ParseMethodRequest(ss.br)
	if err != nil {
		ss.handshakeFailed(ss.ioReason(err), err)
		return req, false
	}
	want := byte(methodNoAuth)
	if cfg.Authenticate != nil {
		want = methodUserPass
	}
	if !bytes.Contains(mr.Methods, []byte{want}) {
		ss.conn.Write([]byte{socksVersion, methodNone})
		ss.handshakeFailed(reasonNoAcceptableMethod, nil)
		return req, false
	}
	if _, err := ss.conn.Write([]byte{socksVersion, want}); err != nil {
		ss.handshakeFailed(ss.ioReason(err), err)
		return req, false
	}

	if want == methodUserPass {
		if !ss.expectByte(userPassVersion, reasonBadAuthVersion) {
			return req, false
		}
		up, err := statute.ParseUserPassRequest(ss.br)
		if err != nil {
			ss.handshakeFailed(ss.ioReason(err), err)
			return req, false
		}
		if !cfg.Authenticate(string(up.User), string(up.Pass)) {
			ss.srv.stats.authFailures.Add(1)
			ss.log.Debug().Str("user", string(up.User)).Msg("socks5: authentication failed")
			ss.conn.Write([]byte{userPassVersion, authFailure})
			return req, false
		}
		if _, err := ss.conn.Write([]byte{userPassVersion, authSuccess}); err != nil {
			ss.handshakeFailed(ss.ioReason(err), err)
			return req, false
		}
	}

	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
	if !ss.expectByte(socksVersion, reasonBadVersion) {
		return req, false
	}
	req, err = statute.ParseRequest(ss.br)
	cmd := command(req.Command)
	switch {
	case errors.Is(err, statute.ErrUnrecognizedAddrType):
		ss.reject(cmd, repAddressTypeNotSupported, "", err)
		return req, false
	case err != nil:
		r := reasonBadRequest
		if ss.rec.err != nil {
			r = ss.ioReason(ss.rec.err)
		}
		ss.handshakeFailed(r, err)
		return req, false
	case cmd.index() == 0:
		ss.reject(cmd, repCommandNotSupported, "", errors.New("unknown command "+strconv.Itoa(int(cmd))))
		return req, false
	}
	return req, true
}

// expectByte peeks at the next byte, which must be b, and fails the
// handshake with r if it is not.
func (ss *session) expectByte(b byte, r reason) bool {
	p, err := ss.br.Peek(1)
	if err != nil {
		ss.handshakeFailed(ss.ioReason(err), err)
		return false
	}
	if p[0] != b {
		ss.handshakeFailed(r, errors.New("got 0x"+strconv.FormatUint(uint64(p[0]), 16)))
		return false
	}
	return true
}

// ioReason classifies an error from reading or writing the client
// connection.
func (ss *session) ioReason(err error) reason {
	switch {
	case ss.ctx.Err() != nil || errors.Is(err, net.ErrClosed):
		return reasonClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return reasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return reasonTruncated
	}
	return reasonIOError
}

func (ss *session) handshakeFailed(r reason, err error) {
	ss.srv.stats.handshakeErrors[r].Add(1)
	ss.log.Debug().Err(err).Stringer("reason", r).Msg("socks5: handshake failed")
}

// reply writes a reply with code and, for a success, the bound address.
func (ss *session) reply(code reply, bound net.Addr) error {
	rep := statute.Reply{Version: socksVersion, Response: byte(code), BndAddr: addrSpec(nil)}
	if code == repSucceeded {
		rep.BndAddr = addrSpec(bound)
	}
	_, err := ss.conn.Write(rep.Bytes())
	return err
}

// reject replies with a failure code, counts it and logs it.
func (ss *session) reject(cmd command, code reply, dest string, err error) {
	ss.reply(code, nil)
	ss.done(cmd, code, dest, err)
}

// done counts the request's result and logs it.
func (ss *session) done(cmd command, code reply, dest string, err error) {
	ss.srv.stats.request(cmd, code)
	ss.log.Debug().Err(err).Stringer("cmd", cmd).Str("dest", dest).Stringer("result", code).Msg("socks5: request")
}

// addrSpec is the SOCKS form of a bound address: IP and port of a
// *net.TCPAddr or *net.UDPAddr, else the "host:port" of its String() (a
// name becomes a domain address), else 0.0.0.0:0.
func addrSpec(a net.Addr) statute.AddrSpec {
	zero := statute.AddrSpec{AddrType: statute.ATYPIPv4, IP: net.IPv4zero}
	var ip net.IP
	var port int
	switch a := a.(type) {
	case nil:
		return zero
	case *net.TCPAddr:
		if a == nil {
			return zero
		}
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		if a == nil {
			return zero
		}
		ip, port = a.IP, a.Port
	default:
		host, ps, err := net.SplitHostPort(a.String())
		if err != nil {
			return zero
		}
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return zero
		}
		port = int(p)
		if ip = net.ParseIP(host); ip == nil {
			if host == "" || len(host) > 255 {
				return zero
			}
			return statute.AddrSpec{AddrType: statute.ATYPDomain, FQDN: host, Port: port}
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		return statute.AddrSpec{AddrType: statute.ATYPIPv4, IP: ip4, Port: port}
	}
	if len(ip) == net.IPv6len {
		return statute.AddrSpec{AddrType: statute.ATYPIPv6, IP: ip, Port: port}
	}
	zero.Port = port
	return zero
}
