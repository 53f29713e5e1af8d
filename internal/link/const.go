// Package link implements the reliable link of the uartproxy protocol
// (docs/protocol.md §5 and §6): SLIP-framed, CRC-32 checked frames carried
// by a selective-repeat ARQ with cumulative and selective acknowledgements,
// a HELLO handshake with session ids, keepalives and dead-link detection.
//
// Concurrency: a Link runs three goroutines. The reader turns bytes into
// frames; the writer writes one encoded frame at a time; the loop owns all
// ARQ state and is the only goroutine that touches it. The upper layer (the
// mux) is called from the loop only, through the Upper interface, and must
// not block there. Stats may be read from any goroutine.
package link

import "errors"

// Sentinel errors passed to Upper.Down and returned by Err.
var (
	ErrClosed        = errors.New("link closed")
	ErrPeerRestarted = errors.New("link: peer restarted (new session)")
	ErrDead          = errors.New("link: peer not responding (link dead)")
	ErrIncompatible  = errors.New("link: incompatible protocol revision")
	ErrProtocol      = errors.New("link: protocol error from peer")
)

// maxWindow is the largest window the 32-bit SACK bitmap can describe.
//
// protocol: must match firmware and docs/protocol.md §6.
const maxWindow = 32

// Drop reasons for frames the link discards, used as metric labels.
const (
	DropCRC        = "crc"
	DropShort      = "short"
	DropBadVersion = "bad_version"
	DropBadType    = "bad_type"
	DropTooLong    = "too_long"
	DropBadLength  = "bad_length"
	DropSlipLong   = "slip_too_long"
	DropNoSession  = "no_session"
	DropDuplicate  = "duplicate"
	DropOutOfWin   = "out_of_window"
	DropBadHello   = "bad_hello"
	DropBadAck     = "bad_ack"
	DropSeedV3     = "seed_v3"
)

// DropReasons lists every reason Stats may report, in a stable order.
var DropReasons = []string{DropCRC, DropShort, DropBadVersion, DropBadType, DropTooLong,
	DropBadLength, DropSlipLong, DropNoSession, DropDuplicate, DropOutOfWin, DropBadHello,
	DropBadAck, DropSeedV3}
