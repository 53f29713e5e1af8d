package repl

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Board describes the board, as Info reports it.
type Board struct {
	// Implementation and Version are sys.implementation's, e.g.
	// "micropython" and "1.27.0".
	Implementation string `json:"implementation"`
	Version        string `json:"version"`
	// Machine is sys.implementation._machine, e.g. "Generic ESP32C3 module
	// with ESP32C3"; Platform is sys.platform, e.g. "esp32".
	Machine  string `json:"machine,omitempty"`
	Platform string `json:"platform"`
	// MemFree is the free heap after a collection, in bytes.
	MemFree int64 `json:"mem_free"`
	// FSFree and FSSize are the root filesystem's free and total bytes.
	FSFree int64 `json:"fs_free"`
	FSSize int64 `json:"fs_size"`
}

// FileState is a file on the board, as Stat reports it.
type FileState struct {
	Path   string
	Exists bool
	Dir    bool
	Size   int64
	SHA256 string // hex; "" unless Exists and not Dir
}

// SHA256 returns the hex sha256 of data, as Stat reports files.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

const infoCode = `import sys,gc,os
gc.collect()
i=sys.implementation
print(i.name)
print('.'.join(str(x) for x in i.version[:3]))
print(getattr(i,'_machine',''))
print(sys.platform)
print(gc.mem_free())
s=os.statvfs('/')
print(s[0]*s[3])
print(s[0]*s[2])
`

// Info describes the board and, unless Config.ChunkSize is set, sizes
// WriteFile's chunks to its free memory.
func (c *Client) Info(ctx context.Context) (Board, error) {
	out, err := c.Exec(ctx, infoCode)
	if err != nil {
		return Board{}, fmt.Errorf("ask the board what it is: %w", err)
	}
	lines := outputLines(out)
	if len(lines) != 7 {
		return Board{}, fmt.Errorf("ask the board what it is: unexpected answer %q", excerpt(out, 200))
	}
	b := Board{Implementation: lines[0], Version: lines[1], Machine: lines[2], Platform: lines[3]}
	for i, p := range []*int64{&b.MemFree, &b.FSFree, &b.FSSize} {
		if *p, err = strconv.ParseInt(lines[4+i], 10, 64); err != nil {
			return Board{}, fmt.Errorf("ask the board what it is: unexpected answer %q", excerpt(out, 200))
		}
	}
	c.chunk = min(max(int(b.MemFree/32)/64*64, minChunk), maxChunk)
	return b, nil
}

func (c *Client) chunkSize() int {
	switch {
	case c.cfg.ChunkSize > 0:
		return c.cfg.ChunkSize
	case c.chunk > 0:
		return c.chunk
	}
	return defaultChunk
}

const statCode = `import os,hashlib,binascii
def _h(p):
 try:
  s=os.stat(p)
 except OSError:
  print('-')
  return
 if s[0]&0x4000:
  print('d')
  return
 h=hashlib.sha256()
 b=bytearray(512)
 m=memoryview(b)
 f=open(p,'rb')
 try:
  while 1:
   n=f.readinto(b)
   if not n:
    break
   h.update(m[:n])
 finally:
  f.close()
 print(s[6],binascii.hexlify(h.digest()).decode())
for p in (%s):
 _h(p)
`

// Stat reports, for each path, whether it exists on the board and, for a
// file, its size and sha256. Paths are absolute on the board.
func (c *Client) Stat(ctx context.Context, paths ...string) ([]FileState, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var list strings.Builder
	for _, p := range paths {
		list.WriteString(pyStr(p))
		list.WriteByte(',')
	}
	out, err := c.Exec(ctx, fmt.Sprintf(statCode, list.String()))
	if err != nil {
		return nil, fmt.Errorf("hash files on the board: %w", err)
	}
	lines := outputLines(out)
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("hash files on the board: %d answers for %d files: %q", len(lines), len(paths), excerpt(out, 200))
	}
	states := make([]FileState, len(paths))
	for i, l := range lines {
		st := FileState{Path: paths[i]}
		switch {
		case l == "-":
		case l == "d":
			st.Exists, st.Dir = true, true
		default:
			size, sum, ok := strings.Cut(l, " ")
			n, err := strconv.ParseInt(size, 10, 64)
			if !ok || err != nil || len(sum) != 64 {
				return nil, fmt.Errorf("hash %s on the board: unexpected answer %q", paths[i], l)
			}
			st.Exists, st.Size, st.SHA256 = true, n, sum
		}
		states[i] = st
	}
	return states, nil
}

const mkdirCode = `import os
q=''
for s in %s.split('/'):
 if s:
  q+='/'+s
  try:
   os.stat(q)
  except OSError:
   os.mkdir(q)
`

// MkdirAll makes dir and its parents on the board, like mkdir -p.
func (c *Client) MkdirAll(ctx context.Context, dir string) error {
	if _, err := c.Exec(ctx, fmt.Sprintf(mkdirCode, pyStr(dir))); err != nil {
		return fmt.Errorf("make directory %s on the board: %w", dir, err)
	}
	return nil
}

const (
	writeOpenCode = `import os
from binascii import a2b_base64 as _a
_f=open(%s,'wb')
_w=_f.write
`
	writeChunkCode = "_w(%s)\n"
	writeDoneCode  = `_f.close()
t,p=%s,%s
try:
 os.rename(t,p)
except OSError:
 try:
  os.remove(p)
 except OSError:
  pass
 os.rename(t,p)
`
	writeCleanupCode = `try:
 _f.close()
except Exception:
 pass
try:
 os.remove(%s)
except OSError:
 pass
`
)

// WriteFile writes data to path on the board, in chunks sized to the
// board (Info), into path+".part" first and renamed over path at the end,
// then checks the file's sha256. progress, if not nil, is called with the
// bytes of data sent after each chunk. The directory must exist.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte, progress func(n int)) (err error) {
	tmp := path + ".part"
	if _, err := c.Exec(ctx, fmt.Sprintf(writeOpenCode, pyStr(tmp))); err != nil {
		return fmt.Errorf("write %s on the board: %w", path, err)
	}
	defer func() {
		if err != nil && c.raw && ctx.Err() == nil {
			// Free what the partial file took, on a full filesystem most.
			if _, cerr := c.Exec(ctx, fmt.Sprintf(writeCleanupCode, pyStr(tmp))); cerr != nil {
				c.log.Debug().Err(cerr).Str("path", tmp).Msg("could not remove the partial file")
			}
		}
	}()
	size := c.chunkSize()
	for off := 0; off < len(data); off += size {
		chunk := data[off:min(off+size, len(data))]
		if _, err := c.Exec(ctx, fmt.Sprintf(writeChunkCode, chunkLiteral(chunk))); err != nil {
			return fmt.Errorf("write %s on the board at byte %d: %w", path, off, err)
		}
		if progress != nil {
			progress(len(chunk))
		}
	}
	if _, err := c.Exec(ctx, fmt.Sprintf(writeDoneCode, pyStr(tmp), pyStr(path))); err != nil {
		return fmt.Errorf("write %s on the board: %w", path, err)
	}
	st, err := c.Stat(ctx, path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if want := SHA256(data); st[0].SHA256 != want || st[0].Size != int64(len(data)) {
		return fmt.Errorf("verify %s: the board has %d bytes with sha256 %s, want %d bytes with %s (the transfer was corrupted; try again)",
			path, st[0].Size, st[0].SHA256, len(data), want)
	}
	return nil
}

const readCode = `import os,binascii
try:
 os.stat(%s)
except OSError:
 print('-')
else:
 print('+')
 with open(%[1]s,'rb') as f:
  while 1:
   b=f.read(384)
   if not b:
    break
   print(binascii.b2a_base64(b).decode().strip())
`

// ReadFile returns the content of path on the board; an error matching
// fs.ErrNotExist if there is no such file.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	out, err := c.Exec(ctx, fmt.Sprintf(readCode, pyStr(path)))
	if err != nil {
		return nil, fmt.Errorf("read %s on the board: %w", path, err)
	}
	lines := outputLines(out)
	switch {
	case len(lines) == 1 && lines[0] == "-":
		return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
	case len(lines) == 0 || lines[0] != "+":
		return nil, fmt.Errorf("read %s on the board: unexpected answer %q", path, excerpt(out, 200))
	}
	var data []byte
	for _, l := range lines[1:] {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			return nil, fmt.Errorf("read %s on the board: %w", path, err)
		}
		data = append(data, b...)
	}
	return data, nil
}

const removeCode = `import os
try:
 os.remove(%s)
except OSError:
 pass
`

// Remove removes the file path on the board, if it is there.
func (c *Client) Remove(ctx context.Context, path string) error {
	if _, err := c.Exec(ctx, fmt.Sprintf(removeCode, pyStr(path))); err != nil {
		return fmt.Errorf("remove %s on the board: %w", path, err)
	}
	return nil
}

// outputLines splits a snippet's output into lines, without "\r".
func outputLines(out []byte) []string {
	s := strings.TrimRight(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// chunkLiteral returns the Python expression for chunk that is shorter: a
// bytes literal (text stays nearly as is) or base64 decoded on the board.
func chunkLiteral(chunk []byte) string {
	lit := pyBytes(chunk)
	if b64 := "_a(b'" + base64.StdEncoding.EncodeToString(chunk) + "')"; len(b64) < len(lit) {
		return b64
	}
	return lit
}

// pyBytes returns a Python bytes literal for b in printable ASCII, so the
// code never holds a control character the REPL would act on.
func pyBytes(b []byte) string {
	var s strings.Builder
	s.Grow(len(b) + 3)
	s.WriteString("b'")
	for _, x := range b {
		switch {
		case x == '\\' || x == '\'':
			s.WriteByte('\\')
			s.WriteByte(x)
		case x == '\n':
			s.WriteString(`\n`)
		case x == '\r':
			s.WriteString(`\r`)
		case x == '\t':
			s.WriteString(`\t`)
		case x >= 0x20 && x < 0x7f:
			s.WriteByte(x)
		default:
			s.WriteString(`\x`)
			s.WriteString(hex.EncodeToString([]byte{x}))
		}
	}
	s.WriteByte('\'')
	return s.String()
}

// pyStr returns a Python str literal for s: plain when s is printable
// ASCII, else a bytes literal decoded as UTF-8 on the board.
func pyStr(s string) string {
	lit := pyBytes([]byte(s))
	if strings.Contains(lit, `\x`) {
		return lit + ".decode()"
	}
	return lit[1:] // the same escapes mean the same in a str literal
}
