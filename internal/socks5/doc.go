// Package socks5 is the SOCKS5 proxy (RFC 1928, with RFC 1929
// username/password) that serve exposes on this host: CONNECT, BIND and
// UDP ASSOCIATE are carried out by the ESP32 through the functions in
// Config, so destination names are resolved by the device, never here.
//
// # Library
//
// Wire parsing comes from github.com/things-go/go-socks5: its statute
// package reads the greeting, the RFC 1929 sub-negotiation, the request and
// the UDP datagram header, and encodes replies. The connection flow around
// those codecs is ours rather than the library's Server.ServeConn, because
// that flow gets in the way of correct behaviour with hostile or failing
// clients:
//
//   - it discards the parsed request when parsing fails and wraps read
//     errors with %v, so a bad address type cannot be counted per command and
//     a timeout cannot be told from a truncated request except by matching
//     error strings;
//   - it checks the version only after reading every offered method;
//   - its RuleSet sees no connection context and can only answer yes or
//     no, while Allow errors other than ErrDenied must be classified like
//     dial errors;
//   - its SendReply turns a success whose bound address is not a
//     *net.TCPAddr or *net.UDPAddr into "address type not supported";
//   - its request handling runs under context.Background(), and its Serve
//     has neither handshake deadlines nor a draining shutdown.
//
// So each handshake step checks the version byte with Peek before calling
// the statute parser, and a read error is classified from what the
// connection itself returned.
//
// # Behaviour worth knowing
//
//   - Reply codes for failed opens follow the standard errnos (which mux
//     errors match): ECONNREFUSED 0x05, EHOSTUNREACH or *net.DNSError 0x04,
//     ENETUNREACH or ENETDOWN 0x03, ETIMEDOUT or a timeout 0x06, ErrDenied
//     or EACCES 0x02, anything else 0x01.
//   - A TCP relay has no idle timeout; it ends when both sides have
//     half-closed, one fails, or the server cuts it.
//   - UDP ASSOCIATE uses one device socket for every destination. Fragments
//     (FRAG != 0) are dropped, not reassembled, as RFC 1928 §7 allows; the
//     statute parser also drops empty datagrams to IPv6 or name
//     destinations. Allow is asked once per destination and a grant or a
//     denial is remembered (up to 256 destinations per association). Drops are
//     counted in Stats.UDPDropped by reason.
//   - BIND accepts one connection; the request's address is not compared
//     with the peer's.
//
// # Concurrency
//
// A Server is safe for use by several goroutines; Serve may run on several
// listeners at once. Each client connection has one goroutine that owns it
// and everything opened for it (device connection, listener, UDP sockets);
// the helper goroutines it starts (the second copy direction, the UDP relay
// directions, the control-connection watcher) are waited for before it
// returns, and Close and Shutdown wait for every connection goroutine. The
// functions in Config are called from many goroutines at once and must
// allow that. Stats may be called at any time.
package socks5
