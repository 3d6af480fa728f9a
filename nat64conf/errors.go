package nat64conf

import (
	"errors"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Error is one problem in a config file.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // dotted key path, e.g. "instance[1].pool4[0]"
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func tomlError(file string, err error) error {
	// A strict-mode error wraps one decode error per unknown key, so it is
	// checked first: every key is reported, not only the first.
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		var es Errors
		for i := range se.Errors {
			line, _ := se.Errors[i].Position()
			es = append(es, &Error{File: file, Line: line, Field: keyPath(se.Errors[i].Key()), Msg: "unknown key (check its spelling and the table it is in)"})
		}
		return es
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		return Errors{{File: file, Line: line, Field: keyPath(de.Key()), Msg: strings.TrimPrefix(de.Error(), "toml: ")}}
	}
	return Errors{{File: file, Msg: err.Error()}}
}
