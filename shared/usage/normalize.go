package usage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MethodOther is the method recorded for a request whose method is none of
// the standard HTTP methods (a server accepts any token as a method).
const MethodOther = "OTHER"

// NoEndpoint is the endpoint recorded for a request that names none.
const NoEndpoint = "(none)"

// NormalizeMethod returns the method an event records for a request's
// method: the standard method it names (in upper case), or MethodOther.
// Whatever a server admitted is thus counted, under a name the record path
// accepts.
func NormalizeMethod(m string) string {
	u := strings.ToUpper(m)
	if httpMethods[u] {
		return u
	}
	return MethodOther
}

// NormalizeEndpoint returns an endpoint the record path accepts for any
// text a server may see as a request's route or path: every character that
// does not show as itself (controls, format characters such as zero-width
// spaces and bidirectional overrides, separators, noncharacters) and every
// byte of invalid UTF-8 is percent-encoded (%01, %E2%80%8B), and the result
// is cut to MaxEndpointBytes at a character boundary, never inside an
// escape. An empty endpoint becomes NoEndpoint. The result always passes
// Event.Validate's endpoint rules, so a metered request is never dropped
// for its endpoint.
func NormalizeEndpoint(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		if !PrintableRune(r) {
			piece = percentEncode(piece)
		}
		if b.Len()+len(piece) > MaxEndpointBytes {
			break
		}
		b.WriteString(piece)
		i += size
	}
	if b.Len() == 0 {
		return NoEndpoint
	}
	return b.String()
}

func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}
