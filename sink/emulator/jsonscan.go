package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// A request body is split with a hand-written scanner rather than encoding/json because
// decoding into map[string]json.RawMessage and then []json.RawMessage walks a ~1 MB body
// twice through the reflective decoder and copies every event; in the benchmark's fast mode
// that was nearly all the emulator's CPU, taken from the relay being measured. The scanner
// validates without reflection and hands out sub-slices of the input. It accepts exactly what
// json.Unmarshal into those types accepts (the differential tests and FuzzSplitJSON hold it
// to that), including invalid UTF-8 inside strings, which encoding/json lets through.

// maxNesting is encoding/json's limit on open arrays and objects; deeper input is an error
// there, so it must be here too.
const maxNesting = 10000

// syntaxError reports where the input stopped being valid JSON.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

// unexpected describes b[i], or the end of input when i is past it.
func unexpected(b []byte, i int, want string) error {
	if i >= len(b) {
		return &syntaxError{"unexpected end of input, want " + want, i}
	}
	return &syntaxError{"unexpected " + strconv.Quote(string(b[i:i+1])) + ", want " + want, i}
}

// splitArray returns the elements of the JSON array b as sub-slices of b, without the
// surrounding whitespace. As json.Unmarshal into []json.RawMessage does, the literal null
// gives a nil slice and no error, and [] an empty non-nil one.
func splitArray(b []byte) ([][]byte, error) {
	i := skipSpace(b, 0)
	if isNullDoc(b, i) {
		return nil, nil
	}
	if i >= len(b) || b[i] != '[' {
		return nil, unexpected(b, i, `"["`)
	}
	i = skipSpace(b, i+1)
	elems := [][]byte{}
	if i < len(b) && b[i] == ']' {
		return elems, end(b, i+1)
	}
	for {
		ve, err := skipValue(b, i, 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, b[i:ve])
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return elems, end(b, i+1)
		}
		return nil, unexpected(b, i, `"," or "]"`)
	}
}

// splitObject returns the members of the JSON object b, each value a sub-slice of b keyed
// by its decoded name. As json.Unmarshal into map[string]json.RawMessage does, a repeated
// name keeps its last value, and the literal null gives a nil map and no error.
func splitObject(b []byte) (map[string][]byte, error) {
	i := skipSpace(b, 0)
	if isNullDoc(b, i) {
		return nil, nil
	}
	if i >= len(b) || b[i] != '{' {
		return nil, unexpected(b, i, `"{"`)
	}
	i = skipSpace(b, i+1)
	fields := make(map[string][]byte, 8)
	if i < len(b) && b[i] == '}' {
		return fields, end(b, i+1)
	}
	for {
		ke, vs, err := skipKey(b, i)
		if err != nil {
			return nil, err
		}
		key, err := decodeKey(b[i:ke])
		if err != nil {
			return nil, err
		}
		ve, err := skipValue(b, vs, 1)
		if err != nil {
			return nil, err
		}
		fields[key] = b[vs:ve]
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return fields, end(b, i+1)
		}
		return nil, unexpected(b, i, `"," or "}"`)
	}
}

// isNullDoc reports whether b, from i on, is the literal null and nothing but whitespace.
func isNullDoc(b []byte, i int) bool {
	return bytes.HasPrefix(b[i:], []byte("null")) && end(b, i+4) == nil
}

// end checks that only whitespace follows offset i.
func end(b []byte, i int) error {
	if i = skipSpace(b, i); i < len(b) {
		return unexpected(b, i, "end of input")
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// decodeKey turns a quoted member name into the string encoding/json would use as map key.
func decodeKey(q []byte) (string, error) {
	raw := q[1 : len(q)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw), nil
	}
	// Escapes, and invalid UTF-8 that encoding/json replaces with U+FFFD, are rare in
	// names; its own unquoting keeps the two in step.
	var key string
	err := json.Unmarshal(q, &key)
	return key, err
}

// skipKey validates a member name and the ':' after it. quoteEnd is just past the name's
// closing quote, next where the value should start.
func skipKey(b []byte, i int) (quoteEnd, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return i, i, unexpected(b, i, "a quoted member name")
	}
	if quoteEnd, err = skipString(b, i); err != nil {
		return quoteEnd, quoteEnd, err
	}
	if next = skipSpace(b, quoteEnd); next >= len(b) || b[next] != ':' {
		return quoteEnd, next, unexpected(b, next, `":"`)
	}
	return quoteEnd, skipSpace(b, next+1), nil
}

// skipValue validates the JSON value starting at b[i] and returns the offset just past it.
// depth is how many arrays and objects enclose it. Nesting is tracked on an explicit stack
// rather than by recursion, so hostile input cannot exhaust the goroutine stack.
func skipValue(b []byte, i, depth int) (int, error) {
	var buf [64]byte
	open := buf[:0] // the closing bracket of each array or object entered here
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return i, unexpected(b, i, "a value")
		}
		var err error
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(open) >= maxNesting {
				return i, &syntaxError{"nesting deeper than " + strconv.Itoa(maxNesting), i}
			}
			closer := c + 2 // ASCII: '{'+2 == '}', '['+2 == ']'
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break
			}
			open = append(open, closer)
			if c == '{' {
				if _, i, err = skipKey(b, i); err != nil {
					return i, err
				}
			}
			continue
		case '"':
			i, err = skipString(b, i)
		case 't':
			i, err = skipLiteral(b, i, "true")
		case 'f':
			i, err = skipLiteral(b, i, "false")
		case 'n':
			i, err = skipLiteral(b, i, "null")
		default:
			i, err = skipNumber(b, i)
		}
		if err != nil {
			return i, err
		}
		// A value ended at i: close finished containers, or move on to the next element.
		for {
			if len(open) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			closer := open[len(open)-1]
			if i < len(b) && b[i] == closer {
				open = open[:len(open)-1]
				i++
				continue
			}
			if i >= len(b) || b[i] != ',' {
				return i, unexpected(b, i, `"," or `+strconv.Quote(string(closer)))
			}
			i = skipSpace(b, i+1)
			if closer == '}' {
				if _, i, err = skipKey(b, i); err != nil {
					return i, err
				}
			}
			break
		}
	}
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, &syntaxError{"invalid literal, want " + lit, i}
	}
	return i + len(lit), nil
}

// skipString validates the string whose opening quote is b[i] and returns the offset just
// past its closing quote. Like encoding/json it rejects raw control characters but lets
// any other byte through, valid UTF-8 or not, and does not pair surrogate escapes.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		// Most of a body is string bytes that need no attention: step over them a word at
		// a time, stopping at the first that does.
		for i+8 <= len(b) {
			if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
			if i >= len(b) {
				return i, unexpected(b, i, "an escape")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for n := 0; n < 4; n++ {
					if i++; i >= len(b) || !isHex(b[i]) {
						return i, unexpected(b, i, "a hex digit")
					}
				}
			default:
				return i, unexpected(b, i, "an escape")
			}
		case c < 0x20:
			return i, &syntaxError{"control character in string", i}
		}
	}
	return i, unexpected(b, i, "a closing quote")
}

// specialBytes sets the high bit of each byte of w (little-endian) that is a quote, a
// backslash or below 0x20. Bytes above the lowest such byte may be flagged falsely (the
// subtractions borrow), so only the lowest set bit is to be trusted.
func specialBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := w^(ones*'"'), w^(ones*'\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w) & highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipNumber validates the number starting at b[i] against RFC 8259's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, unexpected(b, i, "a value")
	}
	if i < len(b) && b[i] == '.' {
		if j := skipDigits(b, i+1); j > i+1 {
			i = j
		} else {
			return j, unexpected(b, j, "a digit")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := skipDigits(b, i); j > i {
			i = j
		} else {
			return j, unexpected(b, j, "a digit")
		}
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
