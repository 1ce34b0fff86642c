package main

import (
	"unicode"
)

// ranges lists [first, last] pairs of the code points in 0..0x10FFFF that match.
func ranges(match func(rune) bool) [][2]rune {
	var out [][2]rune
	start := rune(-1)
	for r := rune(0); r <= unicode.MaxRune+1; r++ {
		in := r <= unicode.MaxRune && match(r)
		switch {
		case in && start < 0:
			start = r
		case !in && start >= 0:
			out = append(out, [2]rune{start, r - 1})
			start = -1
		}
	}
	return out
}

var assignedCategories = []*unicode.RangeTable{unicode.L, unicode.M, unicode.N, unicode.P,
	unicode.S, unicode.Z, unicode.C}

// opTables answers Unicode facts of the Go build: "assigned" (every code point with a
// General_Category other than Cn in Go's unicode tables, unicode.Version) and
// "profile_allowed" (what Kratos' identifier profile allows, the graceful mode's keep set).
func opTables(q question) (answer, error) {
	name, err := q.str("name")
	if err != nil {
		return nil, err
	}
	switch name {
	case "assigned":
		return answer{"version": unicode.Version, "ranges": ranges(func(r rune) bool {
			return unicode.IsOneOf(assignedCategories, r)
		})}, nil
	case "profile_allowed":
		allowed := emailProfile.Allowed()
		return answer{"ranges": ranges(allowed.Contains)}, nil
	}
	return answer{"error": "unknown table " + name}, nil
}
