package projections

import "testing"

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Inbox", "Inbox"},
		{"Grüße, 会議", "Grüße, 会議"},
		{"\x1b[31mRed\x1b[0m", `\x1b[31mRed\x1b[0m`},
		{"two\nrows", `two\nrows`},
		{"a\tb\r", `a\tb\r`},
		{"bell\x07 del\x7f", `bell\x07 del\x7f`},
		{"c1 \u009b2J", `c1 \u009b2J`},
		{"bad \xff utf8", `bad \xff utf8`},
		{"line\u2028sep", `line\u2028sep`},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
