package policies

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Problem is a mistake in a policy or an input file that its author can
// fix. Error() reads "file:line:col: field: message".
type Problem struct {
	File      string
	Line, Col int
	Field     string // "tiers[0].decision"; "" when the message says it all
	Msg       string
}

func (p *Problem) Error() string {
	s := ""
	if p.File != "" {
		s = p.File + ":"
	}
	if p.Line > 0 {
		s += fmt.Sprintf("%d:%d:", p.Line, p.Col)
	}
	if s != "" {
		s += " "
	}
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s + p.Msg
}

// Problems returns every *Problem in err (which may be an errors.Join of
// many), in file, line and column order.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var p *Problem
		if errors.As(err, &p) {
			out = append(out, p)
		}
	}
	walk(err)
	slices.SortStableFunc(out, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return out
}

// joinProblems sorts problems and joins them into one error, nil when
// there are none.
func joinProblems(ps []*Problem) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}
