package repl

import (
	"time"

	"github.com/rs/zerolog"
)

// Config tunes a Client. The zero value works: zero fields take the
// defaults.
type Config struct {
	// Timeout bounds every wait for an answer to a control sequence: the
	// raw REPL banner, "OK", a raw-paste window, the prompt.
	Timeout time.Duration
	// ExecTimeout bounds how long a snippet may run before its output
	// ends.
	ExecTimeout time.Duration
	// NoRawPaste keeps the client in plain raw mode even when the board
	// offers raw-paste mode.
	NoRawPaste bool
	// PlainChunk and PlainPause pace code sent in plain raw mode; a
	// negative PlainPause sends without pausing.
	PlainChunk int
	PlainPause time.Duration
	// ChunkSize is how many bytes of a file WriteFile sends per snippet.
	// Zero derives it from the board's free memory (Info), within
	// 256..4096, or 1024 before Info.
	ChunkSize int
	// Log gets debug lines about the protocol: what was sent (sizes, never
	// the code, which may hold a password) and what the board answered.
	Log zerolog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Timeout:     DefaultTimeout,
		ExecTimeout: DefaultExecTimeout,
		PlainChunk:  DefaultPlainChunk,
		PlainPause:  DefaultPlainPause,
		Log:         zerolog.Nop(),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.ExecTimeout <= 0 {
		c.ExecTimeout = d.ExecTimeout
	}
	if c.PlainChunk <= 0 {
		c.PlainChunk = d.PlainChunk
	}
	switch {
	case c.PlainPause == 0:
		c.PlainPause = d.PlainPause
	case c.PlainPause < 0:
		c.PlainPause = 0
	}
	if c.ChunkSize < 0 {
		c.ChunkSize = 0
	}
	return c
}
