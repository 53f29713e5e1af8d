package seedv3

import (
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/frame"
)

// Config configures a Client. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Resend is how often an unanswered REQ is sent again (the v3 rule:
	// 200 ms). The period counts from the later of the last copy's
	// transmission and the last byte heard from the device, so a RESP
	// that is still arriving is not asked for again.
	Resend time.Duration
	// Deadline is how long a call waits for its RESP (8 s), plus the op's
	// own timeout_ms when its args have one; then it fails with a
	// *DownError (the seed's "bridge_timeout").
	Deadline time.Duration
	// MaxFrame is the largest frame, header included, that the client
	// sends and accepts (8192, the device's SLIP limit).
	MaxFrame int
	// FirstSeq is the seq of the first REQ. 0 picks a random one, so that
	// a new client is unlikely to meet RESPs that a device still caches
	// for a client before it (the device answers a known seq from its
	// cache without looking at the REQ).
	FirstSeq uint16
	// Logger receives debug lines about dropped frames and resends.
	Logger zerolog.Logger
}

// DefaultConfig returns the seed client's settings.
func DefaultConfig() Config {
	return Config{
		Resend:   DefaultResend,
		Deadline: DefaultDeadline,
		MaxFrame: DefaultMaxFrame,
		Logger:   zerolog.Nop(),
	}
}

// withDefaults fills zero fields and clamps MaxFrame to what the frame
// format can carry.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Resend <= 0 {
		c.Resend = d.Resend
	}
	if c.Deadline <= 0 {
		c.Deadline = d.Deadline
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	c.MaxFrame = min(max(c.MaxFrame, minMaxFrame), frame.V3HeaderLen+frame.V3MaxPayloadLen)
	return c
}

// NetConfig configures a Net: the scheduler's policy (see the package
// documentation) and the buffers of its sockets. Zero fields take the
// defaults of DefaultNetConfig.
type NetConfig struct {
	// ConnectTimeout caps sock_connect's timeout_ms (5 s, the seed's
	// default); a shorter context deadline shortens it. The device is
	// blocked for as long as a connect takes.
	ConnectTimeout time.Duration
	// LongPoll is the recv/accept/recvfrom timeout_ms when the polled
	// socket is the only one with work (75 ms), cut short so that it ends
	// when another socket's next poll is due.
	LongPoll time.Duration
	// ShortPoll is the timeout_ms when several sockets have work (1 ms:
	// non-blocking in effect, without asking the firmware for timeout 0,
	// which MicroPython turns into EAGAIN).
	ShortPoll time.Duration
	// MinIdle is the first backoff of a socket whose poll came back empty
	// (10 ms); each further empty poll doubles it up to MaxIdle (250 ms).
	// Data, or a write on the socket, resets it.
	MinIdle, MaxIdle time.Duration
	// SharedRecv caps recv's n while other sockets have work too (4096),
	// so that a bulk download yields the line to interactive streams
	// sooner. Alone, a socket asks for as much as fits one frame.
	SharedRecv int
	// RecvBuffer is how much received data a Conn holds for its reader
	// (256 KiB); the scheduler stops polling a full one.
	RecvBuffer int
	// SendBuffer is how much written data a Conn queues (64 KiB); Write
	// blocks while it is full.
	SendBuffer int
	// AcceptQueue is how many accepted connections a Listener holds (16),
	// and the datagrams a PacketConn holds (64 is used for those).
	AcceptQueue int
	// PingEvery is how often the scheduler pings to notice a reboot by
	// uptime (2 s).
	PingEvery time.Duration
	// CloseTimeout bounds the sock_reset that Close sends (2 s).
	CloseTimeout time.Duration
	Logger       zerolog.Logger
}

// DefaultNetConfig returns the scheduler's defaults.
func DefaultNetConfig() NetConfig {
	return NetConfig{
		ConnectTimeout: 5 * time.Second,
		LongPoll:       75 * time.Millisecond,
		ShortPoll:      1 * time.Millisecond,
		MinIdle:        10 * time.Millisecond,
		MaxIdle:        250 * time.Millisecond,
		SharedRecv:     4096,
		RecvBuffer:     256 << 10,
		SendBuffer:     64 << 10,
		AcceptQueue:    16,
		PingEvery:      2 * time.Second,
		CloseTimeout:   2 * time.Second,
		Logger:         zerolog.Nop(),
	}
}

func (c NetConfig) withDefaults() NetConfig {
	d := DefaultNetConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&c.ConnectTimeout, d.ConnectTimeout)
	setDur(&c.LongPoll, d.LongPoll)
	setDur(&c.ShortPoll, d.ShortPoll)
	setDur(&c.MinIdle, d.MinIdle)
	setDur(&c.MaxIdle, d.MaxIdle)
	setDur(&c.PingEvery, d.PingEvery)
	setDur(&c.CloseTimeout, d.CloseTimeout)
	setInt(&c.SharedRecv, d.SharedRecv)
	setInt(&c.RecvBuffer, d.RecvBuffer)
	setInt(&c.SendBuffer, d.SendBuffer)
	setInt(&c.AcceptQueue, d.AcceptQueue)
	c.MaxIdle = max(c.MaxIdle, c.MinIdle)
	return c
}

// DeviceConfig configures an emulated seed device. Zero fields take the
// defaults of DefaultDeviceConfig.
type DeviceConfig struct {
	// BootTime is how long Reboot keeps the device silent (300 ms).
	BootTime time.Duration
	// MaxFrame is the device's SLIP limit (8192).
	MaxFrame int
	// SendTimeout bounds sock_send on a socket without sock_settimeout
	// (10 s), so a peer that never reads cannot hang the emulator for
	// good; the firmware would block.
	SendTimeout time.Duration
	Logger      zerolog.Logger
}

// DefaultDeviceConfig returns the emulator's defaults.
func DefaultDeviceConfig() DeviceConfig {
	return DeviceConfig{
		BootTime:    300 * time.Millisecond,
		MaxFrame:    DefaultMaxFrame,
		SendTimeout: 10 * time.Second,
		Logger:      zerolog.Nop(),
	}
}

func (c DeviceConfig) withDefaults() DeviceConfig {
	d := DefaultDeviceConfig()
	if c.BootTime <= 0 {
		c.BootTime = d.BootTime
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = d.SendTimeout
	}
	return c
}
