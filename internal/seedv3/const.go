package seedv3

import (
	"errors"
	"time"
)

// Operation names and arguments (shared/reference/seed-v3-wire-format.md,
// "Operations").
//
// protocol: must match firmware and docs/protocol.md
const (
	OpPing          = "ping"
	OpGetTime       = "get_time"
	OpSetTime       = "set_time"
	OpWiFiStatus    = "wifi_status"
	OpDNS           = "dns"
	OpSockOpen      = "sock_open"
	OpSockSetTO     = "sock_settimeout"
	OpSockConnect   = "sock_connect"
	OpSockSend      = "sock_send"
	OpSockRecv      = "sock_recv"
	OpSockClose     = "sock_close"
	OpSockBind      = "sock_bind"
	OpSockListen    = "sock_listen"
	OpSockAccept    = "sock_accept"
	OpSockSendTo    = "sock_sendto"
	OpSockRecvFrom  = "sock_recvfrom"
	OpSockWrapSSL   = "sock_wrap_ssl"
	OpSockReset     = "sock_reset"
	sockTypeStream  = 1 // sock_open type: SOCK_STREAM
	sockTypeDgram   = 2 // sock_open type: SOCK_DGRAM
	familyInet      = 2 // AF_INET
	familyInet6     = 10
	maxSID          = 1024 // sids run 1..maxSID and wrap
	respCacheLen    = 16   // RESP frames the device keeps, keyed by seq
	defaultRecvN    = 512  // n of sock_recv and sock_recvfrom when absent
	defaultOpTimeMS = 5000 // timeout_ms of connect, recv, accept, recvfrom when absent
	defaultBacklog  = 5
	defaultDNSPort  = 80
)

// Error codes of RESP {"ok": false, "error": code}.
//
// protocol: must match firmware and docs/protocol.md
const (
	CodeMissingHost       = "missing_host"
	CodeMissingSID        = "missing_sid"
	CodeMissingData       = "missing_data"
	CodeMissingHostOrPort = "missing_host_or_port"
	CodeInvalidSID        = "invalid_sid"
	CodeInvalidSIDType    = "invalid_sid_type"
	CodeDNS               = "dns_error"
	CodeSockOpen          = "sock_open_error"
	CodeSockConnect       = "sock_connect_error"
	CodeSockSend          = "sock_send_error"
	CodeSockRecv          = "sock_recv_error"
	CodeSockClose         = "sock_close_error"
	CodeSockBind          = "sock_bind_error"
	CodeSockListen        = "sock_listen_error"
	CodeSockAccept        = "sock_accept_error"
	CodeSockSendTo        = "sock_sendto_error"
	CodeSockRecvFrom      = "sock_recvfrom_error"
	CodeSockWrapSSL       = "sock_wrap_ssl_error"
	CodeSockSetTimeout    = "sock_settimeout_error"
	CodeUnknownOp         = "unknown_op"
	CodeMissingParameter  = "missing_parameter"
	CodeInvalidParameter  = "invalid_parameter"
	CodeException         = "exception"
	// CodeBridgeTimeout is the seed client's own code for "no RESP before
	// the deadline"; here it is a *DownError.
	CodeBridgeTimeout = "bridge_timeout"
)

// Client defaults (the seed client's rules, shared/reference).
const (
	DefaultResend   = 200 * time.Millisecond
	DefaultDeadline = 8 * time.Second
	DefaultMaxFrame = 8192 // the device's SLIP limit
	minMaxFrame     = 512
)

// Overheads of the CBOR maps around the data of one op, generous, so that
// a frame carrying MaxFrame-overhead bytes of data always fits MaxFrame.
const (
	recvOverhead = 96  // sock_recv RESP: header 8, {"ok", "result": {"data", "n", "eof"}}
	sendOverhead = 96  // sock_send REQ: header 8, {"op", "args": {"sid", "data"}}
	addrOverhead = 128 // sendto/recvfrom: plus a host text and port
)

// Sentinel errors.
var (
	// ErrTooLarge is returned by Call when the REQ would not fit MaxFrame.
	ErrTooLarge = errors.New("seedv3: request larger than MaxFrame")
	// ErrBadResponse wraps a RESP whose payload is not a response map.
	ErrBadResponse = errors.New("seedv3: malformed RESP")
)
