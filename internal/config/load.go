package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds what Load reads; a configuration is a few kilobytes.
const maxFileSize = 1 << 20

// Load reads the configuration file at path over Default(). Keys the file
// does not name keep their defaults; a list in the file replaces the
// default list. Unknown keys, duplicate keys and values of the wrong type
// are errors naming the file, line and key path. Load does not Validate.
// A missing file gives an error for which errors.Is(err, fs.ErrNotExist)
// holds.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Config{}, &Error{File: path, Err: fmt.Errorf("larger than %d bytes; is this the configuration file?", maxFileSize)}
	}
	return Parse(data, path)
}

// Parse reads a configuration from data as Load does; name is the file
// name used in error messages.
func Parse(data []byte, name string) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF { // empty, or only comments
			return cfg, nil
		}
		return Config{}, syntaxError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return Config{}, syntaxError(name, err)
	default:
		return Config{}, &Error{File: name, Line: extra.Line, Err: errors.New(`a second YAML document ("---"); put every key in one document`)}
	}
	d := decoder{file: name, src: make(map[string]origin)}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(&cfg).Elem(), "")
	}
	if len(d.errs) > 0 {
		return Config{}, errors.Join(d.errs...)
	}
	cfg.src = d.src
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns the YAML library's "yaml: line 3: ..." into an *Error.
func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		hint := ""
		if strings.Contains(m[2], "cannot start any token") {
			hint = " (YAML indents with spaces, not tabs)"
		}
		return &Error{File: name, Line: line, Err: fmt.Errorf("invalid YAML: %s%s", m[2], hint)}
	}
	return &Error{File: name, Err: fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))}
}

// Bounds on the work one file can cause, however its aliases multiply.
const (
	maxErrors = 20
	maxNodes  = 100000
)

// decoder fills a Config from a yaml.Node tree by the yaml tags of its
// fields, recording the line of every key and collecting errors that name
// the key path.
type decoder struct {
	file  string
	src   map[string]origin
	errs  []error
	nodes int
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) == maxErrors {
		d.errs = append(d.errs, &Error{File: d.file, Err: errors.New("too many errors; stopping here")})
	}
	if len(d.errs) > maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Key: path, Err: fmt.Errorf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode stores n into v, whose key path is path ("" for the top level).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for hops := 0; n.Kind == yaml.AliasNode; hops++ {
		if n.Alias == nil || hops > 100 {
			d.fail(n, path, "alias that leads nowhere")
			return
		}
		n = n.Alias
	}
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(n, path, "more than %d values (too many aliases?)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value keeps the default
	}
	if v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a single value, not %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		d.leaf(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list (lines starting with \"- \", or [a, b]), not %s", kindName(n))
			return
		}
		if len(n.Content) == 0 {
			v.SetZero() // "[]": no items, nil like the defaults
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.src[p] = origin{file: d.file, line: e.Line}
			d.decode(e, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String, reflect.Bool, reflect.Int:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a single value, not %s", kindName(n))
			return
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(n.Value)
		case reflect.Bool:
			var b bool
			if n.Decode(&b) != nil {
				d.fail(n, path, "%q is not true or false", n.Value)
				return
			}
			v.SetBool(b)
		case reflect.Int:
			// The library would truncate 1.5 to 1; only integers will do,
			// in YAML's notations or quoted in decimal.
			var i int
			err := errors.New("not an integer")
			switch n.ShortTag() {
			case "!!int":
				err = n.Decode(&i)
			case "!!str":
				i, err = strconv.Atoi(strings.TrimSpace(n.Value))
			}
			if err != nil {
				d.fail(n, path, "%q is not a whole number", n.Value)
				return
			}
			v.SetInt(int64(i))
		}
		d.leaf(n, v, path)
	default:
		d.fail(n, path, "internal error: no decoder for %s", v.Type())
	}
}

// leaf records the line and value of a key that holds a single value.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	o := d.src[path]
	o.file = d.file
	if o.line == 0 {
		o.line = n.Line
	}
	o.value = fmt.Sprint(v.Interface())
	d.src[path] = o
}

// mapping stores the mapping n into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.fail(n, path, "the file must be a mapping of keys to values, e.g. \"port: /dev/ttyUSB0\", not %s", kindName(n))
		} else {
			d.fail(n, path, "want a mapping (indented \"key: value\" lines), not %s", kindName(n))
		}
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var known []string
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = i
			known = append(known, tag)
		}
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		p := join(path, k.Value)
		if k.Value == "<<" {
			d.fail(k, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, p, "key given twice (first on line %d); keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		fi, ok := fields[k.Value]
		if !ok {
			d.fail(k, p, "unknown key%s; known keys%s: %s", suggest(k.Value, known), in(path), strings.Join(known, ", "))
			continue
		}
		d.src[p] = origin{file: d.file, line: k.Line}
		d.decode(val, v.Field(fi), p)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func in(path string) string {
	if path == "" {
		return " at the top level"
	}
	return " in " + path
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// if one is within two edits.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, computed only
// for short strings (keys); longer ones count as far apart.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
