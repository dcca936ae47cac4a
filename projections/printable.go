package projections

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable is text from a server (a folder's name, a subject, an error
// message) made safe for a terminal, a table or a CSV: control characters
// (escape sequences, newlines that would split a row, tabs that would
// shift columns) and invalid UTF-8 are written as Go escapes (\x1b, \n,
// \t), so nothing the server sends can move the cursor, recolour the
// screen or forge a row. Other text is unchanged.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}
