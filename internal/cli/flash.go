package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/uartproxy/uartproxy/firmware"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/repl"
	"github.com/uartproxy/uartproxy/internal/serialport"
)

// envWiFiPassword holds the Wi-Fi password for flash, if no file gives it.
const envWiFiPassword = "UARTPROXY_WIFI_PASSWORD"

// configPath is the firmware's configuration file on the board; its keys
// are those of firmware/uproxy/config.py (DEFAULTS).
//
// protocol: must match firmware/uproxy/config.py.
const configPath = "/uproxy.json"

// Tuning of flash, variables so the tests need not wait as long.
var (
	flashREPL   = repl.Config{}         // timeouts and pacing of the REPL client
	flashSettle = 2 * time.Second       // console watched after the reset without --check-port
	flashWDT    = 10 * 60 * time.Second // watchdog timeout while flashing
)

// flashFlags are the flags of 'uartproxy flash'.
type flashFlags struct {
	Port, PasswordFile, SSID, Flow, CheckPort string
	Baud, UART, TX, RX, RTS, CTS, DataBaud    int
	CheckTimeout                              time.Duration
	DryRun, Force, NoRawPaste                 bool
}

func (f *flashFlags) addTo(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&f.Port, "port", "p", "", "the board's USB console (MicroPython REPL), e.g. /dev/ttyACM0")
	fs.IntVarP(&f.Baud, "baud", "b", 115200, "REPL line rate in bit/s")
	fs.StringVar(&f.SSID, "wifi-ssid", "", "Wi-Fi network the board joins; the password is asked for on a terminal")
	fs.StringVar(&f.PasswordFile, "wifi-password-file", "", "read the Wi-Fi password from this file (else $"+envWiFiPassword+", else a prompt)")
	fs.IntVar(&f.UART, "uart-id", 0, "UART of the data link on the board (0..3); unset: the firmware's default for the board")
	fs.IntVar(&f.TX, "uart-tx", 0, "TX pin of the data UART (0..48); unset: the firmware's default for the board")
	fs.IntVar(&f.RX, "uart-rx", 0, "RX pin of the data UART (0..48)")
	fs.IntVar(&f.RTS, "uart-rts", 0, "RTS pin of the data UART (0..48, -1 for none)")
	fs.IntVar(&f.CTS, "uart-cts", 0, "CTS pin of the data UART (0..48, -1 for none)")
	fs.IntVar(&f.DataBaud, "data-baud", 921600, "data link rate in bit/s, as serve uses it")
	addEnum(cmd, fs, &f.Flow, "flow", flowRTSCTS, "data link flow control, as serve uses it", flowRTSCTS, flowNone)
	fs.StringVar(&f.CheckPort, "check-port", "", "after the reset, wait for the firmware's HELLO on this data UART (at the configuration's baud and flow)")
	fs.DurationVar(&f.CheckTimeout, "check-timeout", 20*time.Second, "how long --check-port waits for the HELLO")
	fs.BoolVar(&f.DryRun, "dry-run", false, "compare with the board and print what would be written; write nothing")
	fs.BoolVar(&f.Force, "force", false, "write every file, even those the board already has")
	fs.BoolVar(&f.NoRawPaste, "no-raw-paste", false, "send code in plain raw mode only (for boards whose raw-paste mode fails)")
	cmd.RegisterFlagCompletionFunc("port", completePorts)
	cmd.RegisterFlagCompletionFunc("check-port", completePorts)
}

// validate checks what flag parsing cannot; cmd tells which flags were given.
func (f *flashFlags) validate(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	switch {
	case f.Port == "":
		return usageErrorf("--port is required: the board's USB console (list the candidates with 'uartproxy ports')")
	case f.Baud <= 0:
		return usageErrorf("--baud %d: want a positive rate in bit/s, e.g. 115200", f.Baud)
	case f.CheckPort != "" && f.CheckPort == f.Port:
		return usageErrorf("--check-port is the data UART, not the REPL console --port")
	case changed("wifi-ssid") && (f.SSID == "" || len(f.SSID) > 32):
		return usageErrorf("--wifi-ssid %q: want 1 to 32 bytes", f.SSID)
	case f.UART < 0 || f.UART > 3:
		return usageErrorf("--uart-id %d: want 0..3", f.UART)
	case f.DataBaud < 9600 || f.DataBaud > 5000000:
		return usageErrorf("--data-baud %d: want 9600..5000000 bit/s", f.DataBaud)
	case f.CheckTimeout <= 0:
		return usageErrorf("--check-timeout %v: want a positive duration", f.CheckTimeout)
	}
	for _, p := range []struct {
		name string
		v    int
		none bool
	}{{"uart-tx", f.TX, false}, {"uart-rx", f.RX, false}, {"uart-rts", f.RTS, true}, {"uart-cts", f.CTS, true}} {
		if changed(p.name) && (p.v < 0 || p.v > 48) && !(p.none && p.v == -1) {
			return usageErrorf("--%s %d: want a GPIO number 0..48%s", p.name, p.v, map[bool]string{true: " or -1 for none"}[p.none])
		}
	}
	return nil
}

func newFlashCmd() *cobra.Command {
	var f flashFlags
	cmd := &cobra.Command{
		Use:   "flash --port PATH [--wifi-ssid SSID]",
		Short: "Put the uartproxy firmware and its configuration onto a MicroPython ESP32",
		Long: `Put the uartproxy firmware (main.py and the uproxy package, built into this
binary) and its configuration (` + configPath + `) onto an ESP32 running MicroPython,
through the MicroPython REPL on its USB console (--port, 115200 baud).

flash stops the running program (Ctrl-C), soft-resets the board, writes the
files whose sha256 differs from the board's (all with --force), checks each
by its sha256, and soft-resets the board again so that the firmware starts.
With --check-port, the data UART that serve uses, it then waits for the
firmware's HELLO and reports its version.

The configuration keeps what the board's ` + configPath + ` holds and changes
what the flags say. The Wi-Fi password comes from --wifi-password-file, else
$` + envWiFiPassword + `, else a prompt when --wifi-ssid is given on a terminal;
it is never printed.`,
		Example: `  uartproxy flash --port /dev/ttyACM0 --wifi-ssid home
  uartproxy flash --port /dev/ttyACM0 --dry-run
  uartproxy flash --port /dev/ttyACM0 --wifi-ssid home --wifi-password-file ~/.wifi \
      --uart-tx 4 --uart-rx 5 --check-port /dev/ttyUSB0`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			return runFlash(cmd, &f)
		},
	}
	f.addTo(cmd)
	return cmd
}

// secret is the Wi-Fi password: it prints as its length, never itself.
type secret struct {
	value string
	set   bool
}

func (s secret) String() string {
	if s.value == "" {
		return "(no password)"
	}
	return fmt.Sprintf("(password: %d characters, not shown)", len([]rune(s.value)))
}

// password finds the Wi-Fi password: the file, the environment, a prompt.
func (f *flashFlags) password(cmd *cobra.Command) (secret, error) {
	var s secret
	switch {
	case f.PasswordFile != "":
		b, err := os.ReadFile(f.PasswordFile)
		if err != nil {
			return s, fmt.Errorf("--wifi-password-file: %w", err)
		}
		s = secret{value: strings.TrimRight(string(b), "\r\n"), set: true}
	case os.Getenv(envWiFiPassword) != "":
		s = secret{value: os.Getenv(envWiFiPassword), set: true}
	case cmd.Flags().Changed("wifi-ssid"):
		in, ok := cmd.InOrStdin().(*os.File)
		if !ok || !term.IsTerminal(int(in.Fd())) {
			return s, nil // the board's password for this network, if any
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Wi-Fi password for %q (empty for an open network): ", f.SSID)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return s, fmt.Errorf("read the Wi-Fi password: %w", err)
		}
		s = secret{value: string(b), set: true}
	}
	if n := len(s.value); n > 0 && (n < 8 || n > 64) {
		return s, usageErrorf("the Wi-Fi password has %d characters: WPA2 wants 8 to 63 (64 hex digits), or none for an open network", n)
	}
	return s, nil
}

// boardConfig is the content of /uproxy.json: the board's keys, changed by
// the flags. Unknown keys are kept, for the firmware's later versions.
type boardConfig map[string]any

// mergeConfig returns the configuration to write: old (the board's file, nil
// if none) with the flags applied. pw.set replaces the password.
func mergeConfig(old []byte, f *flashFlags, changed func(string) bool, pw secret, log zerolog.Logger) boardConfig {
	c := boardConfig{}
	if len(old) > 0 {
		d := json.NewDecoder(bytes.NewReader(old))
		d.UseNumber()
		if err := d.Decode(&c); err != nil {
			log.Warn().Err(err).Msg("the board's " + configPath + " is not a JSON object; writing a new one")
			c = boardConfig{}
		}
	}
	if changed("wifi-ssid") {
		if c["ssid"] != f.SSID && !pw.set {
			c["password"] = "" // the old network's password is no use
		}
		c["ssid"] = f.SSID
	}
	if pw.set {
		c["password"] = pw.value
	}
	// Pins not given and not on the board stay out: the firmware knows
	// each board's defaults.
	for _, k := range []struct {
		flag, key string
		v         int
	}{{"uart-id", "uart", f.UART}, {"uart-tx", "tx", f.TX}, {"uart-rx", "rx", f.RX}, {"uart-rts", "rts", f.RTS}, {"uart-cts", "cts", f.CTS}} {
		if changed(k.flag) {
			c[k.key] = k.v
		}
	}
	if changed("data-baud") || c["baud"] == nil {
		c["baud"] = f.DataBaud
	}
	if changed("flow") || c["flow"] == nil {
		c["flow"] = f.Flow
	}
	return c
}

// marshal returns the file's bytes: keys sorted, one per line.
func (c boardConfig) marshal() []byte {
	b, _ := json.MarshalIndent(map[string]any(c), "", "  ")
	return append(b, '\n')
}

// public returns the configuration without the password, and the password.
func (c boardConfig) public() (map[string]any, secret) {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	pw, _ := c["password"].(string)
	delete(out, "password")
	return out, secret{value: pw, set: pw != ""}
}

func (c boardConfig) String() string {
	pub, pw := c.public()
	keys := make([]string, 0, len(pub))
	for k := range pub {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		v, _ := json.Marshal(pub[k])
		parts = append(parts, k+" "+string(v))
		if k == "ssid" {
			parts = append(parts, pw.String())
		}
	}
	return strings.Join(parts, ", ")
}

// Actions in flashFile.Action and flashConfig.Action.
const (
	actionWritten    = "written"
	actionUnchanged  = "unchanged"
	actionWouldWrite = "would_write"
)

// flashResult is what flash prints.
type flashResult struct {
	Port         string       `json:"port"`
	DryRun       bool         `json:"dry_run"`
	Board        repl.Board   `json:"board"`
	RawPaste     bool         `json:"raw_paste"`
	Files        []flashFile  `json:"files"`
	Config       flashConfig  `json:"config"`
	BytesWritten int64        `json:"bytes_written"`
	Restarted    bool         `json:"restarted"`
	Console      string       `json:"console,omitempty"`
	Warning      string       `json:"warning,omitempty"`
	Check        *helloResult `json:"check,omitempty"`
}

type flashFile struct {
	Path   string `json:"path"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	Action string `json:"action"`
	data   []byte
}

type flashConfig struct {
	Path           string         `json:"path"`
	Action         string         `json:"action"`
	Values         map[string]any `json:"values"`
	PasswordLength int            `json:"password_length"`
	data           []byte
	text           string
	password       string
}

// firmwareFiles returns the files of the firmware, main.py last: a
// transfer cut short then leaves the old main.py, not a new one that
// imports missing modules.
func firmwareFiles(fsys fs.FS, paths []string) ([]flashFile, error) {
	var out, last []flashFile
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		f := flashFile{Path: "/" + p, Size: len(b), SHA256: repl.SHA256(b), data: b}
		if p == "main.py" || p == "boot.py" {
			last = append(last, f)
		} else {
			out = append(out, f)
		}
	}
	return append(out, last...), nil
}

// wdtCode lengthens the watchdog the interrupted firmware started (an
// ESP32's cannot be stopped), so that it does not reset the board while
// flash writes; the firmware sets its own again when it starts.
const wdtCode = `import sys
if 'uproxy.app' in sys.modules:
 try:
  ms=sys.modules['uproxy.config'].load()['wdt_ms']
 except Exception:
  ms=1
 if ms:
  from machine import WDT
  WDT(timeout=%d)
  print('wdt')
`

func runFlash(cmd *cobra.Command, f *flashFlags) (err error) {
	log := loggerFor(cmd)
	ctx := cmd.Context()
	pw, err := f.password(cmd)
	if err != nil {
		return err
	}
	defer func() {
		// A board that fell out of the raw REPL echoes what it gets, and
		// an error may quote the board: never the password.
		if err != nil && pw.value != "" && strings.Contains(err.Error(), pw.value) {
			err = errors.New(strings.ReplaceAll(err.Error(), pw.value, "(password)"))
		}
	}()
	files, err := firmwareFiles(firmware.FS(), firmware.Paths())
	if err != nil {
		return err
	}
	var watch *helloWatch
	if f.CheckPort != "" {
		// Opened first: a wrong path fails before the board is touched.
		if watch, err = startHelloWatch(f.CheckPort, f.DataBaud, f.Flow == flowRTSCTS, log); err != nil {
			return fmt.Errorf("--check-port: %w", err)
		}
		defer watch.close()
	}
	port, err := serialport.Open(serialport.Config{Path: f.Port, Baud: f.Baud})
	if err != nil {
		return err
	}
	cfg := flashREPL
	cfg.NoRawPaste = cfg.NoRawPaste || f.NoRawPaste
	cfg.Log = log.With().Str("port", f.Port).Logger()
	c := repl.New(port, cfg)
	defer c.Close()
	res := flashResult{Port: f.Port, DryRun: f.DryRun}

	if err := c.Enter(ctx); err != nil {
		return fmt.Errorf("%s: %w", f.Port, err)
	}
	defer func() {
		if err == nil || res.Restarted || ctx.Err() != nil || errors.Is(err, repl.ErrNoAnswer) {
			return
		}
		// Give the board its program back.
		rerr := c.Reboot(ctx)
		if errors.Is(rerr, repl.ErrNotRaw) {
			if rerr = c.Enter(ctx); rerr == nil {
				rerr = c.Reboot(ctx)
			}
		}
		if rerr != nil {
			log.Warn().Err(rerr).Msg("could not restart the board's program")
		}
	}()
	if out, err := c.Exec(ctx, fmt.Sprintf(wdtCode, flashWDT.Milliseconds())); err != nil {
		log.Warn().Err(err).Msg("could not lengthen the board's watchdog; it may reset the board while flash writes")
	} else if len(out) > 0 {
		log.Info().Dur("timeout", flashWDT).Msg("lengthened the firmware's watchdog while flashing")
	}
	if err := c.SoftReset(ctx); err != nil {
		return err
	}
	if res.Board, err = c.Info(ctx); err != nil {
		return err
	}
	log.Info().Str("micropython", res.Board.Version).Str("machine", res.Board.Machine).
		Int64("fs_free", res.Board.FSFree).Msg("board")

	paths := make([]string, 0, len(files)+1)
	for _, fl := range files {
		paths = append(paths, fl.Path)
	}
	states, err := c.Stat(ctx, append(paths, configPath)...)
	if err != nil {
		return err
	}
	var old []byte
	if states[len(files)].Exists {
		if old, err = c.ReadFile(ctx, configPath); err != nil {
			return err
		}
	}
	conf := mergeConfig(old, f, cmd.Flags().Changed, pw, log)
	if ssid, _ := conf["ssid"].(string); ssid == "" {
		log.Warn().Msg("no Wi-Fi network configured: pass --wifi-ssid (the link and its test services work without)")
	} else if _, p := conf.public(); !p.set && !pw.set && cmd.Flags().Changed("wifi-ssid") {
		return usageErrorf("no Wi-Fi password for %q: use --wifi-password-file FILE or $%s, or run flash on a terminal to be asked (an open network: --wifi-password-file /dev/null)", ssid, envWiFiPassword)
	}
	values, cpw := conf.public()
	res.Config = flashConfig{Path: configPath, Values: values, PasswordLength: len([]rune(cpw.value)),
		data: conf.marshal(), text: conf.String(), password: cpw.value}

	// The plan: what differs, or everything with --force.
	var need, freed int64
	act := func(st repl.FileState, data []byte) string {
		if !f.Force && st.Exists && st.SHA256 == repl.SHA256(data) {
			return actionUnchanged
		}
		need += int64(len(data))
		freed += st.Size
		if f.DryRun {
			return actionWouldWrite
		}
		return actionWritten
	}
	for i := range files {
		files[i].Action = act(states[i], files[i].data)
	}
	res.Config.Action = act(states[len(files)], res.Config.data)
	res.Files = files
	if !f.DryRun && need > res.Board.FSFree+freed {
		return fmt.Errorf("not enough space on the board: %d bytes to write, %d free", need, res.Board.FSFree+freed)
	}

	if !f.DryRun {
		if res.BytesWritten, err = writeAll(ctx, cmd, c, &res, need); err != nil {
			return err
		}
	}
	res.RawPaste = c.RawPaste()
	if watch != nil {
		// The line as the firmware will set it up: the board's
		// configuration, new or (dry run) old.
		line := conf
		if f.DryRun {
			line = mergeConfig(old, f, func(string) bool { return false }, secret{}, zerolog.Nop())
		}
		if err := watch.setLine(line); err != nil {
			return fmt.Errorf("--check-port: %w", err)
		}
		watch.arm()
	}
	start := time.Now()
	if err := c.Reboot(ctx); err != nil {
		return err
	}
	res.Restarted = true
	failed := afterReset(ctx, c, watch, f, &res, start, log)
	if perr := printerFor(cmd).Result(res, func(w io.Writer) { writeFlashText(w, &res) }); perr != nil {
		return perr
	}
	return failed
}

// writeAll writes the files and the configuration that differ, with a
// progress bar on a terminal, and returns the bytes written.
func writeAll(ctx context.Context, cmd *cobra.Command, c *repl.Client, res *flashResult, total int64) (int64, error) {
	var bar *progressbar.ProgressBar
	if asJSON, _ := cmd.Flags().GetBool(flagJSON); !asJSON && isTerminal(cmd.ErrOrStderr()) && total > 0 {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
			progressbar.OptionSetDescription("flashing"), progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30), progressbar.OptionSetPredictTime(false), progressbar.OptionClearOnFinish())
		defer bar.Finish()
	}
	var written int64
	progress := func(n int) {
		written += int64(n)
		if bar != nil {
			bar.Add(n)
		}
	}
	dirs := map[string]bool{"/": true}
	for _, fl := range res.Files {
		if fl.Action != actionWritten {
			continue
		}
		if dir := path.Dir(fl.Path); !dirs[dir] {
			if err := c.MkdirAll(ctx, dir); err != nil {
				return written, err
			}
			dirs[dir] = true
		}
		if err := c.WriteFile(ctx, fl.Path, fl.data, progress); err != nil {
			return written, err
		}
	}
	if res.Config.Action == actionWritten {
		if err := c.WriteFile(ctx, configPath, res.Config.data, progress); err != nil {
			return written, err
		}
	}
	return written, nil
}

// afterReset watches the console, and the data UART with --check-port,
// after the reset, and returns the error that makes flash fail.
func afterReset(ctx context.Context, c *repl.Client, watch *helloWatch, f *flashFlags, res *flashResult, start time.Time, log zerolog.Logger) error {
	wait := flashSettle
	if watch != nil {
		wait = f.CheckTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var hello *message.Hello
	var wg sync.WaitGroup
	if watch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h, ok := watch.wait(wctx); ok {
				hello = &h
				cancel()
			}
		}()
	}
	// The prompt means main.py ended; a traceback before it, that it
	// failed, and then no HELLO will come.
	console := c.Console(wctx, wait, func(b []byte) bool { return bytes.Contains(b, []byte("\n>>> ")) })
	if bytes.Contains(console, []byte("Traceback (most recent call last)")) {
		cancel()
	}
	wg.Wait()
	res.Console = string(console)
	if pw := res.Config.password; pw != "" {
		res.Console = strings.ReplaceAll(res.Console, pw, "(password)") // the firmware never prints it; in case
	}
	var failed error
	if i := bytes.Index(console, []byte("Traceback (most recent call last)")); i >= 0 {
		last := console[i:]
		if j := bytes.Index(last, []byte("MicroPython v")); j > 0 {
			last = last[:j]
		}
		lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(last), "\r\n", "\n")), "\n")
		failed = fmt.Errorf("the firmware failed to start: %s (the board's console has the whole traceback; see --json)", lines[len(lines)-1])
	} else if bytes.Contains(console, []byte("\n>>> ")) {
		res.Warning = "main.py ended at once: the board is at its REPL prompt"
		log.Warn().Msg(res.Warning)
	}
	if watch != nil {
		res.Check = watch.result(hello, f, time.Since(start))
		if failed == nil && !res.Check.OK {
			failed = errors.New(res.Check.Error)
		}
	}
	return failed
}

func writeFlashText(w io.Writer, r *flashResult) {
	b := r.Board
	mode := "plain raw mode"
	if r.RawPaste {
		mode = "raw-paste mode"
	}
	fmt.Fprintf(w, "board       %s %s, %s (%s), %d KiB free of %d KiB, %s\n",
		b.Implementation, b.Version, b.Machine, b.Platform, b.FSFree>>10, b.FSSize>>10, mode)
	label := map[string]string{actionWritten: "written", actionUnchanged: "unchanged", actionWouldWrite: "would write"}
	for _, fl := range r.Files {
		fmt.Fprintf(w, "%-11s %-22s %7d bytes\n", label[fl.Action], fl.Path, fl.Size)
	}
	fmt.Fprintf(w, "%-11s %-22s %s\n", label[r.Config.Action], r.Config.Path, r.Config.text)
	if r.DryRun {
		fmt.Fprintln(w, "dry run     nothing written; the board restarted its program")
	} else {
		fmt.Fprintf(w, "restarted   %d bytes written, the firmware is starting\n", r.BytesWritten)
	}
	if r.Warning != "" {
		fmt.Fprintf(w, "warning     %s\n", r.Warning)
	}
	if c := r.Check; c != nil {
		if c.OK {
			fmt.Fprintf(w, "check       HELLO from firmware %s (%s) on %s after %.1f s\n", c.Firmware, c.Model, c.Port, float64(c.AfterMS)/1000)
		} else {
			fmt.Fprintf(w, "check       FAILED: %s\n", c.Error)
		}
	}
}
