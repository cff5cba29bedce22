package bot

import (
	"errors"
	"fmt"
)

// Problem is an error the user can fix. Error() is shown to them as is:
// it names the command or field, what was expected and what was found.
// decide and the command parser return *Problem for every refusal;
// anything else is an internal error that the user sees as a short
// reference while the chain goes to the log.
type Problem struct {
	Field string // "/approve", "--tier", "ESC-4"; "" when the message says it all
	Msg   string
}

func (p *Problem) Error() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// problemf builds a *Problem for field with a formatted message.
func problemf(field, format string, args ...any) *Problem {
	return &Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IsProblem reports whether err is (or wraps) a *Problem, and returns it.
func IsProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}
