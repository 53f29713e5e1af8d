package config

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// Error is a problem with one key of the configuration. It says where the
// value came from: a line of the file, or an environment variable; a value
// set by a flag (or changed after loading) has neither, and Key names it.
type Error struct {
	File string // the file, when the value came from it
	Line int    // 1-based line in File; 0 if unknown
	Var  string // the environment variable the value came from, if not File
	Key  string // key path, e.g. "socks5.listen" or "forwards[2]"; "" for the file as a whole
	Err  error  // what is wrong and how to fix it
}

// Error formats e as "file:line: key: problem", "VAR: key: problem" or
// "key: problem".
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	case e.Var != "":
		b.WriteString(e.Var + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// origin is where the value of one key came from.
type origin struct {
	file  string
	line  int
	env   string
	value string // the value as read, formatted with fmt.Sprint; "" for lists and sections
}

// errf returns an *Error for key, whose current value is value (formatted
// with fmt.Sprint). It cites the file line or variable the value came from
// only while the value is still the one that source gave.
func (c *Config) errf(key string, value any, format string, args ...any) *Error {
	e := &Error{Key: key, Err: fmt.Errorf(format, args...)}
	e.File, e.Line, e.Var = c.source(key, value)
	return e
}

// source returns the file and line, or the environment variable, that
// key's value came from, if its value is still value.
func (c *Config) source(key string, value any) (file string, line int, env string) {
	if o, ok := c.src[key]; ok {
		if o.value == fmt.Sprint(value) {
			return o.file, o.line, o.env
		}
		return "", 0, ""
	}
	// A key missing from a list element ("- action: allow" without "to")
	// holds the element's default: cite the element.
	if i := strings.LastIndexByte(key, '.'); i > 0 && strings.HasSuffix(key[:i], "]") {
		if o, ok := c.src[key[:i]]; ok && o.file != "" {
			return o.file, o.line, ""
		}
	}
	return "", 0, ""
}

// setSource records that key now holds value from the environment
// variable name, and forgets the origins of keys below it (list elements).
func (c *Config) setSource(key, name string, value any) {
	if c.src == nil {
		c.src = make(map[string]origin)
	}
	for k := range c.src {
		if strings.HasPrefix(k, key+"[") || strings.HasPrefix(k, key+".") {
			delete(c.src, k)
		}
	}
	c.src[key] = origin{env: name, value: fmt.Sprint(value)}
}

// cloneSources gives c its own copy of the origin map before it is
// modified, so copies of a Config do not see each other's changes.
func (c *Config) cloneSources() {
	c.src = maps.Clone(c.src)
}
