package socks5

import (
	"syscall"
	"time"
)

// protocol: RFC 1928 and RFC 1929 (the statute package has the rest).
const (
	socksVersion    = 0x05
	userPassVersion = 0x01
	methodNoAuth    = 0x00
	methodUserPass  = 0x02
	methodNone      = 0xff
	authSuccess     = 0x00
	authFailure     = 0x01
)

// tuning (not protocol)
const (
	// DefaultHandshakeTimeout bounds greeting, authentication and request.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultConnectTimeout bounds one Dial, ListenPacket or Listen.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultBindTimeout bounds BIND's wait for the incoming connection.
	DefaultBindTimeout = 60 * time.Second
	// DefaultUDPIdleTimeout ends a quiet UDP association.
	DefaultUDPIdleTimeout = 2 * time.Minute

	handshakeBuffer  = 1 << 10  // largest handshake message is 513 bytes (RFC 1929)
	copyBuffer       = 32 << 10 // one TCP copy step
	udpBuffer        = 64 << 10 // one datagram, larger than any UDP payload
	udpHeaderRoom    = 4 + 1 + 255 + 2
	udpAllowCache    = 256 // destinations remembered per association
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// ErrDenied is returned by Config.Allow for a destination the rules forbid;
// the client gets reply 0x02. It matches syscall.EACCES with errors.Is, as
// a denied open on the device does.
var ErrDenied error = deniedError{}

type deniedError struct{}

func (deniedError) Error() string        { return "socks5: connection not allowed by ruleset" }
func (deniedError) Is(target error) bool { return target == syscall.EACCES }

// Command labels, as used in Stats.Requests and in log lines.
const (
	CmdConnect      = "connect"
	CmdBind         = "bind"
	CmdUDPAssociate = "udp_associate"
	CmdUnknown      = "unknown"
)

// Result labels, one per reply code, as used in Stats.Requests.
const (
	ResultSucceeded               = "succeeded"
	ResultGeneralFailure          = "general_failure"
	ResultNotAllowed              = "not_allowed"
	ResultNetworkUnreachable      = "network_unreachable"
	ResultHostUnreachable         = "host_unreachable"
	ResultConnectionRefused       = "connection_refused"
	ResultTTLExpired              = "ttl_expired"
	ResultCommandNotSupported     = "command_not_supported"
	ResultAddressTypeNotSupported = "address_type_not_supported"
)

// Handshake error reasons, as used in Stats.HandshakeErrors: why a client
// connection ended before a request was read. Authentication failures are
// counted in Stats.AuthFailures instead; a request with an unknown command
// or address type gets a reply and is counted in Stats.Requests.
const (
	ReasonTimeout            = "timeout"              // HandshakeTimeout passed
	ReasonTruncated          = "truncated"            // the client closed mid-message
	ReasonBadVersion         = "bad_version"          // not SOCKS5 (SOCKS4, HTTP, ...)
	ReasonBadAuthVersion     = "bad_auth_version"     // RFC 1929 version byte is not 1
	ReasonNoAcceptableMethod = "no_acceptable_method" // reply 0xFF
	ReasonBadRequest         = "bad_request"          // a request that cannot be parsed
	ReasonIOError            = "io_error"             // any other read or write error
	ReasonClosed             = "closed"               // cut by Close or Shutdown
)

// Reasons for dropping a datagram of a UDP association, as used in
// Stats.UDPDropped.
const (
	DropForeignSource = "foreign_source" // not from the client's IP
	DropForeignPort   = "foreign_port"   // from the client's IP, another port
	DropBadHeader     = "bad_header"     // SOCKS UDP header unreadable
	DropFragment      = "fragment"       // FRAG != 0: fragments are not reassembled
	DropNoDestination = "no_destination" // empty host or port 0
	DropDenied        = "denied"         // Allow refused the destination
	DropDeviceWrite   = "device_write"   // the device socket refused it (too large, ...)
	DropClientUnknown = "client_unknown" // from the device before the client's port is known
	DropClientWrite   = "client_write"   // writing to the client failed
)

// dropReason indexes dropReasons.
type dropReason uint8

const (
	dropForeignSource dropReason = iota
	dropForeignPort
	dropBadHeader
	dropFragment
	dropNoDestination
	dropDenied
	dropDeviceWrite
	dropClientUnknown
	dropClientWrite
	numDropReasons
)

var dropReasons = [numDropReasons]string{
	DropForeignSource, DropForeignPort, DropBadHeader, DropFragment, DropNoDestination,
	DropDenied, DropDeviceWrite, DropClientUnknown, DropClientWrite,
}

// String returns the reason's token.
func (r dropReason) String() string {
	if r < numDropReasons {
		return dropReasons[r]
	}
	return "other"
}

// command is a SOCKS5 request command.
type command uint8

// protocol: RFC 1928 §4.
const (
	cmdConnect   command = 0x01
	cmdBind      command = 0x02
	cmdAssociate command = 0x03
	numCommands          = 4 // index 0 is "unknown"
)

// String returns the command's label.
func (c command) String() string {
	switch c {
	case cmdConnect:
		return CmdConnect
	case cmdBind:
		return CmdBind
	case cmdAssociate:
		return CmdUDPAssociate
	}
	return CmdUnknown
}

// index returns the command's slot in the stats table.
func (c command) index() int {
	if c >= cmdConnect && c <= cmdAssociate {
		return int(c)
	}
	return 0
}

// reply is a SOCKS5 reply code.
type reply uint8

// protocol: RFC 1928 §6.
const (
	repSucceeded               reply = 0x00
	repGeneralFailure          reply = 0x01
	repNotAllowed              reply = 0x02
	repNetworkUnreachable      reply = 0x03
	repHostUnreachable         reply = 0x04
	repConnectionRefused       reply = 0x05
	repTTLExpired              reply = 0x06
	repCommandNotSupported     reply = 0x07
	repAddressTypeNotSupported reply = 0x08
	numReplies                       = 9
)

var replyLabels = [numReplies]string{
	ResultSucceeded, ResultGeneralFailure, ResultNotAllowed, ResultNetworkUnreachable,
	ResultHostUnreachable, ResultConnectionRefused, ResultTTLExpired,
	ResultCommandNotSupported, ResultAddressTypeNotSupported,
}

// String returns the reply's result label.
func (r reply) String() string {
	if int(r) < len(replyLabels) {
		return replyLabels[r]
	}
	return ResultGeneralFailure
}

var reasons = [...]string{
	ReasonTimeout, ReasonTruncated, ReasonBadVersion, ReasonBadAuthVersion,
	ReasonNoAcceptableMethod, ReasonBadRequest, ReasonIOError, ReasonClosed,
}

// reason indexes reasons.
type reason uint8

const (
	reasonTimeout reason = iota
	reasonTruncated
	reasonBadVersion
	reasonBadAuthVersion
	reasonNoAcceptableMethod
	reasonBadRequest
	reasonIOError
	reasonClosed
	numReasons
)

// String returns the reason's token.
func (r reason) String() string {
	if r < numReasons {
		return reasons[r]
	}
	return ReasonIOError
}
