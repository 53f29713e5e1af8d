package seedv3

import "maps"

// Stats is a snapshot of a Client's counters.
type Stats struct {
	Requests     uint64 // Requests counts REQs sent for the first time (calls started).
	Resends      uint64 // Resends counts REQ copies sent again.
	Responses    uint64 // Responses counts RESPs that completed a call.
	DupResponses uint64 // DupResponses counts RESPs for no call in flight (duplicates, late ones).
	RemoteErrors uint64 // RemoteErrors counts RESPs with ok false.
	Timeouts     uint64 // Timeouts counts calls that got no RESP before the deadline.
	Canceled     uint64 // Canceled counts calls abandoned because their context ended.
	AcksSent     uint64 // AcksSent counts ACKs sent (one per RESP received).
	AcksDropped  uint64 // AcksDropped counts ACKs not sent because the writer was far behind.
	AcksReceived uint64 // AcksReceived counts the device's ACKs of our REQs.
	FramesIn     uint64 // FramesIn counts valid frames received.
	FramesOut    uint64 // FramesOut counts frames written.
	BytesIn      uint64 // BytesIn counts bytes read from the line.
	BytesOut     uint64 // BytesOut counts bytes written to the line.
	// BadFrames counts frames dropped, by reason: the frame package's
	// tokens (crc, short, bad_version, bad_length, bad_type), "too_long"
	// from SLIP, and "bad_resp" for a RESP that is not a response map.
	BadFrames map[string]uint64
}

func (s Stats) clone() Stats {
	s.BadFrames = maps.Clone(s.BadFrames)
	if s.BadFrames == nil {
		s.BadFrames = map[string]uint64{}
	}
	return s
}

// NetStats is a snapshot of a Net's counters.
type NetStats struct {
	Ops         map[string]uint64 // Ops counts the calls the scheduler made, by op.
	EmptyPolls  uint64            // EmptyPolls counts recv/accept/recvfrom polls that brought nothing.
	BytesUp     uint64            // BytesUp counts data bytes the device sent for us (sock_send, sock_sendto).
	BytesDown   uint64            // BytesDown counts data bytes received (sock_recv, sock_recvfrom).
	Dials       uint64            // Dials counts successful connects.
	DialErrors  uint64            // DialErrors counts failed connects.
	Accepted    uint64            // Accepted counts connections accepted by listeners.
	Reboots     uint64            // Reboots counts device reboots noticed.
	DeviceDowns uint64            // DeviceDowns counts calls that got no RESP before the deadline.
	Open        int               // Open is the number of sockets open now (Conns, Listeners, PacketConns).
}

func (s NetStats) clone() NetStats {
	s.Ops = maps.Clone(s.Ops)
	if s.Ops == nil {
		s.Ops = map[string]uint64{}
	}
	return s
}

// DeviceStats is a snapshot of an emulated Device's counters.
type DeviceStats struct {
	Executed  map[string]uint64 // Executed counts ops run, by op.
	CacheHits uint64            // CacheHits counts REQs answered from the RESP cache.
	AcksSent  uint64            // AcksSent counts ACKs sent.
	AcksRecv  uint64            // AcksRecv counts ACKs received.
	BadFrames uint64            // BadFrames counts frames dropped (CRC, length, version, SLIP).
	Dropped   uint64            // Dropped counts frames ignored while booting.
	Reboots   uint64            // Reboots counts calls of Reboot.
	Open      int               // Open is the number of sockets open now.
}

func (s DeviceStats) clone() DeviceStats {
	s.Executed = maps.Clone(s.Executed)
	if s.Executed == nil {
		s.Executed = map[string]uint64{}
	}
	return s
}
