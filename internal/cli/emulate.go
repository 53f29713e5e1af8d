package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// emulateFlags are the flags of 'uartproxy emulate'.
type emulateFlags struct {
	Path       string
	Baud       int
	Flow       string
	BER        float64
	Drop       float64
	BurstRate  float64
	BurstLen   int
	RxBuffer   int
	BootTime   time.Duration
	MaxStreams int
}

func (f *emulateFlags) addTo(cmd *cobra.Command) {
	d := emulator.DefaultConfig()
	fs := cmd.Flags()
	fs.StringVar(&f.Path, "pty", "", "path of the symlink to create to the pty, e.g. /tmp/ttyESP32 (required)")
	fs.IntVarP(&f.Baud, "baud", "b", 921600, "line rate in bit/s (8N1); the emulator paces bytes at baud/10 per second")
	addEnum(cmd, fs, &f.Flow, "flow", flowRTSCTS, "emulated RTS/CTS flow control; with none, bytes reaching a full receive buffer are lost", flowRTSCTS, flowNone)
	fs.Float64Var(&f.BER, "ber", 0, "bit error rate: probability that each bit is flipped, e.g. 1e-5")
	fs.Float64Var(&f.Drop, "drop", 0, "probability that each byte is lost on the wire")
	fs.Float64Var(&f.BurstRate, "burst-rate", 0, "probability per byte that an error burst starts")
	fs.IntVar(&f.BurstLen, "burst-len", uartemu.DefaultBurstLen, "bytes of garbage in one error burst")
	fs.IntVar(&f.RxBuffer, "rx-buffer", uartemu.DefaultRxBuffer, "receive buffer at each end of the line, in bytes")
	fs.DurationVar(&f.BootTime, "boot-time", d.BootTime, "how long a reboot (SIGUSR1) keeps the device silent")
	fs.IntVar(&f.MaxStreams, "max-streams", d.MaxStreams, "streams the device keeps open at once")
	cmd.MarkFlagFilename("pty")
}

// Validate checks what flag parsing cannot.
func (f *emulateFlags) Validate() error {
	if f.Path == "" {
		return usageErrorf("--pty is required: the path to link to the emulated device, e.g. --pty /tmp/ttyESP32")
	}
	if fi, err := os.Lstat(f.Path); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return usageErrorf("--pty %s: exists and is not a symlink; refusing to replace it (remove it or choose another path)", f.Path)
	}
	if err := (&serialFlags{Baud: f.Baud, Flow: f.Flow}).Validate(); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"ber", f.BER}, {"drop", f.Drop}, {"burst-rate", f.BurstRate}} {
		if !(p.v >= 0 && p.v < 1) { // also catches NaN
			return usageErrorf("--%s %v: want a probability in [0, 1), e.g. 1e-5", p.name, p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"burst-len", f.BurstLen}, {"rx-buffer", f.RxBuffer}, {"max-streams", f.MaxStreams}} {
		if p.v <= 0 {
			return usageErrorf("--%s %d: want a positive number", p.name, p.v)
		}
	}
	if f.BootTime <= 0 {
		return usageErrorf("--boot-time %v: want a positive duration, e.g. 300ms", f.BootTime)
	}
	return nil
}

// line returns the emulated line, the same both ways.
func (f *emulateFlags) line() uartemu.Config {
	return uartemu.Symmetric(uartemu.Line{
		Baud:        f.Baud,
		RxBuffer:    f.RxBuffer,
		FlowControl: f.Flow == flowRTSCTS,
		BER:         f.BER,
		BurstRate:   f.BurstRate,
		BurstLen:    f.BurstLen,
		DropRate:    f.Drop,
	})
}

// emulateInfo is what emulate prints once the device is up.
type emulateInfo struct {
	Path       string `json:"path"`
	PTY        string `json:"pty"`
	Baud       int    `json:"baud"`
	Flow       string `json:"flow"`
	Model      string `json:"model"`
	MaxStreams int    `json:"max_streams"`
	PID        int    `json:"pid"`
	Connect    string `json:"connect"`
}

func newEmulateCmd() *cobra.Command {
	var f emulateFlags
	cmd := &cobra.Command{
		Use:   "emulate --pty PATH",
		Short: "Run an emulated ESP32 on a pseudo-terminal",
		Long: `Run an emulated ESP32 behind a pseudo-terminal linked at PATH, for trying
uartproxy without a board. The device runs the uartproxy protocol and makes
its connections from this machine; the line between the pty and the device
is paced at --baud and can lose or corrupt bytes (--ber, --drop,
--burst-rate).

Connect to it like to a board: uartproxy serve --port PATH --baud N.
It runs until interrupted (Ctrl-C, SIGTERM); SIGUSR1 reboots the device.`,
		Example: `  uartproxy emulate --pty /tmp/ttyESP32
  uartproxy emulate --pty /tmp/ttyESP32 --baud 115200 --ber 1e-5
  kill -USR1 $(pgrep -f 'uartproxy emulate')   # reboot the device`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.Validate(); err != nil {
				return err
			}
			return runEmulate(cmd, &f)
		},
	}
	f.addTo(cmd)
	return cmd
}

func runEmulate(cmd *cobra.Command, f *emulateFlags) (err error) {
	log := loggerFor(cmd)
	ctx := cmd.Context()

	// Before the pty exists, so nobody can signal a reboot we would miss.
	reboot := make(chan os.Signal, 1)
	if sig := rebootSignal(); sig != nil {
		signal.Notify(reboot, sig)
		defer signal.Stop(reboot)
	}

	if target, err := os.Readlink(f.Path); err == nil {
		log.Warn().Str("path", f.Path).Str("target", target).Msg("replacing an existing symlink")
	}
	pty, err := uartemu.NewPTY(f.line(), f.Path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := pty.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close pty: %w", cerr)
		}
	}()

	dc := emulator.DefaultConfig()
	dc.Baud = f.Baud
	dc.MaxStreams = f.MaxStreams
	dc.BootTime = f.BootTime
	dc.Logger = log.With().Str("device", "emulator").Logger()
	dc.Link.NoFlowControl = f.Flow == flowNone
	dev, err := emulator.New(pty.Device(), dc)
	if err != nil {
		return err
	}
	defer dev.Close()

	log.Info().Str("path", f.Path).Str("pty", pty.Path()).Int("baud", f.Baud).Str("flow", f.Flow).
		Str("model", dc.Model).Int("max_streams", dc.MaxStreams).Uint32("stream_window", dc.StreamWindow).
		Int("max_payload", dc.MaxPayload).Int("window", dc.Window).
		Float64("ber", f.BER).Float64("drop", f.Drop).Float64("burst_rate", f.BurstRate).
		Msg("emulated ESP32 ready")

	connect := fmt.Sprintf("uartproxy serve --port %s --baud %d", f.Path, f.Baud)
	if f.Flow == flowNone {
		connect += " --flow none"
	}
	info := emulateInfo{
		Path: f.Path, PTY: pty.Path(), Baud: f.Baud, Flow: f.Flow,
		Model: dc.Model, MaxStreams: dc.MaxStreams, PID: os.Getpid(), Connect: connect,
	}
	err = printerFor(cmd).Result(info, func(w io.Writer) {
		fmt.Fprintf(w, "emulated ESP32 on %s (%s), %d baud, flow control %s\n", info.Path, info.PTY, info.Baud, info.Flow)
		fmt.Fprintf(w, "connect with: %s\n", info.Connect)
		fmt.Fprintf(w, "reboot it with: kill -USR1 %d; stop with Ctrl-C\n", info.PID)
	})
	if err != nil {
		return err
	}

	for {
		select {
		case <-ctx.Done():
			log.Info().Str("path", f.Path).Msg("stopping the emulated ESP32")
			return nil
		case <-reboot:
			log.Info().Dur("boot_time", f.BootTime).Msg("SIGUSR1: rebooting the emulated ESP32")
			if err := dev.Reboot(); err != nil {
				return fmt.Errorf("reboot: %w", err)
			}
			log.Info().Msg("emulated ESP32 up again")
		}
	}
}

// rebootSignal returns SIGUSR1 on Linux, the only system where emulate runs
// (uartemu's pty is Linux-only), and nil elsewhere. It goes by number
// because package syscall has no SIGUSR1 on Windows, where this file must
// still build; TestRebootSignal checks that the number is SIGUSR1.
func rebootSignal() os.Signal {
	switch {
	case runtime.GOOS != "linux":
		return nil
	case strings.HasPrefix(runtime.GOARCH, "mips"):
		return syscall.Signal(0x10)
	default:
		return syscall.Signal(0xa)
	}
}
