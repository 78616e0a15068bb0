package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// goavro sizes an array's backing slice from the block count it reads, before it reads any
// item, and accepts counts up to MaxInt32. So a corrupt or hostile value of a few dozen
// bytes can make it allocate 32 GiB, and the runtime's out-of-memory error is fatal: the
// process dies on that record, restarts, reads it again. A guard walks the body with the
// writer schema first, without allocating, and rejects any array or map block count the
// remaining bytes cannot possibly hold.

type guardKind uint8

const (
	gNull guardKind = iota
	gBoolean
	gVarint // int, long, enum
	gFixed  // float, double, fixed: size bytes
	gBytes  // bytes, string
	gRecord
	gUnion
	gArray
	gMap
)

type guard struct {
	kind  guardKind
	size  int      // gFixed
	enum  int      // symbol count for enums, 0 otherwise
	subs  []*guard // record fields, union branches
	names []string // record field names, for errors
	items *guard   // array items, map values
	// empty is true when a value can encode to zero bytes (null, an empty record, fixed
	// of size 0); arrays of those cannot be bounded by the bytes left.
	empty bool
}

// maxEmptyItems bounds the zero-byte array items of one body, which no byte count
// limits. It is a budget for the whole body, not per block: blocks of them cost a few
// bytes each, so a per-block bound would let a 1 MB body claim billions of items.
const maxEmptyItems = 1 << 16

// maxDepth bounds nesting through recursive schemas so a hostile body cannot exhaust the
// stack.
const maxDepth = 256

var errShort = errors.New("value ends early")

// newGuard builds the guard for a schema's JSON text.
func newGuard(text string) (*guard, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, err
	}
	p := guardParser{names: make(map[string]*guard)}
	g, err := p.parse(v, "")
	if err != nil {
		return nil, err
	}
	return g, nil
}

type guardParser struct {
	names map[string]*guard
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *guardParser) parse(v any, ns string) (*guard, error) {
	switch s := v.(type) {
	case string:
		return p.named(s, ns)
	case []any:
		g := &guard{kind: gUnion}
		for _, b := range s {
			sub, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			g.subs = append(g.subs, sub)
		}
		return g, nil
	case map[string]any:
		return p.object(s, ns)
	}
	return nil, fmt.Errorf("unexpected schema element %T", v)
}

func (p *guardParser) named(s, ns string) (*guard, error) {
	switch s {
	case "null":
		return &guard{kind: gNull, empty: true}, nil
	case "boolean":
		return &guard{kind: gBoolean}, nil
	case "int", "long":
		return &guard{kind: gVarint}, nil
	case "float":
		return &guard{kind: gFixed, size: 4}, nil
	case "double":
		return &guard{kind: gFixed, size: 8}, nil
	case "bytes", "string":
		return &guard{kind: gBytes}, nil
	}
	if g, ok := p.names[fullName(s, ns)]; ok {
		return g, nil
	}
	if g, ok := p.names[s]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("unknown type %q", s)
}

func (p *guardParser) object(m map[string]any, ns string) (*guard, error) {
	t, ok := m["type"].(string)
	if !ok {
		return p.parse(m["type"], ns)
	}
	declare := func(g *guard) string {
		name, _ := m["name"].(string)
		if sns, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = sns
		}
		full := fullName(name, ns)
		p.names[full] = g
		if i := strings.LastIndexByte(full, '.'); i >= 0 {
			return full[:i] // named types inside take this one's namespace
		}
		return ns
	}
	switch t {
	case "record", "error":
		g := &guard{kind: gRecord}
		inner := declare(g) // before the fields, which may refer to it
		fields, _ := m["fields"].([]any)
		g.empty = true
		for _, f := range fields {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, errors.New("record field is not an object")
			}
			sub, err := p.parse(fm["type"], inner)
			if err != nil {
				return nil, err
			}
			name, _ := fm["name"].(string)
			g.subs = append(g.subs, sub)
			g.names = append(g.names, name)
			g.empty = g.empty && sub.empty
		}
		return g, nil
	case "enum":
		g := &guard{kind: gVarint}
		syms, _ := m["symbols"].([]any)
		g.enum = len(syms)
		declare(g)
		return g, nil
	case "fixed":
		size, _ := m["size"].(float64)
		g := &guard{kind: gFixed, size: int(size), empty: size == 0}
		declare(g)
		return g, nil
	case "array", "map":
		key := "items"
		g := &guard{kind: gArray}
		if t == "map" {
			key, g.kind = "values", gMap
		}
		items, err := p.parse(m[key], ns)
		if err != nil {
			return nil, err
		}
		g.items = items
		return g, nil
	}
	// A primitive written as an object, possibly with a logicalType.
	return p.named(t, ns)
}

// varint reads a zig-zag varint as Avro encodes int and long.
func varint(b []byte) (int64, []byte, error) {
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(u>>1) ^ -int64(u&1), b[i+1:], nil
		}
	}
	if len(b) < 10 {
		return 0, nil, errShort
	}
	return 0, nil, errors.New("varint longer than 10 bytes")
}

func skipBytes(b []byte) ([]byte, error) {
	n, rest, err := varint(b)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(rest)) {
		return nil, fmt.Errorf("length %d does not fit the %d bytes left", n, len(rest))
	}
	return rest[n:], nil
}

// check walks one value of g at the start of b and returns what follows it.
func (g *guard) check(b []byte, depth int) ([]byte, error) {
	empty := maxEmptyItems
	return g.walk(b, depth, &empty)
}

// walk is check with the budget of zero-byte items left.
func (g *guard) walk(b []byte, depth int, empty *int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch g.kind {
	case gNull:
		return b, nil
	case gBoolean:
		if len(b) < 1 {
			return nil, errShort
		}
		return b[1:], nil
	case gVarint:
		n, rest, err := varint(b)
		if err == nil && g.enum > 0 && (n < 0 || n >= int64(g.enum)) {
			err = fmt.Errorf("enum index %d out of range", n)
		}
		return rest, err
	case gFixed:
		if len(b) < g.size {
			return nil, errShort
		}
		return b[g.size:], nil
	case gBytes:
		return skipBytes(b)
	case gRecord:
		var err error
		for i, f := range g.subs {
			if b, err = f.walk(b, depth+1, empty); err != nil {
				// Field names come from the schema, never from the data.
				return nil, fmt.Errorf("field %q: %w", g.names[i], err)
			}
		}
		return b, nil
	case gUnion:
		i, rest, err := varint(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(g.subs)) {
			return nil, fmt.Errorf("union branch %d out of range", i)
		}
		rest, err = g.subs[i].walk(rest, depth+1, empty)
		if err != nil {
			return nil, fmt.Errorf("union branch %d: %w", i, err)
		}
		return rest, nil
	case gArray, gMap:
		for {
			n, rest, err := varint(b)
			if err != nil {
				return nil, err
			}
			b = rest
			if n == 0 {
				return b, nil
			}
			if n < 0 { // a negative count is followed by the block's size in bytes
				n = -n
				if _, b, err = varint(b); err != nil {
					return nil, err
				}
			}
			// Every map entry and every non-empty item takes at least a byte.
			switch {
			case n < 0:
				return nil, errors.New("block count out of range")
			case g.kind == gMap || !g.items.empty:
				if n > int64(len(b)) {
					return nil, fmt.Errorf("block count %d does not fit the %d bytes left", n, len(b))
				}
			case n > int64(*empty):
				return nil, fmt.Errorf("more than %d zero-size array items", maxEmptyItems)
			default:
				*empty -= int(n)
			}
			for ; n > 0; n-- {
				if g.kind == gMap {
					if b, err = skipBytes(b); err != nil {
						return nil, fmt.Errorf("map key: %w", err)
					}
				}
				if b, err = g.items.walk(b, depth+1, empty); err != nil {
					return nil, err
				}
			}
		}
	}
	return nil, fmt.Errorf("unknown guard kind %d", g.kind)
}
