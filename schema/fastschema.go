package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The fast path reads a body straight into an Event with a program compiled from the
// writer schema. Its schema tree mirrors goavro's reading of the schema, not the Avro
// spec, because the program must see exactly the values goavro would have produced: the
// Go type goavro gives a value (int32, time.Time, *big.Rat, …) decides what the mapping
// accepts. Anything this parser does not mirror with certainty is errUnsupported, and the
// schema keeps the goavro path.

// native is the Go type goavro's NativeFromBinary produces for a schema node.
type native uint8

const (
	nNull     native = iota + 1
	nBool            // bool
	nInt             // int32
	nLong            // int64
	nFloat           // float32
	nDouble          // float64
	nBytes           // []byte
	nFixed           // []byte of a fixed size
	nString          // string
	nEnum            // string, one of the symbols
	nTime            // time.Time: int "date", long "timestamp-millis"/"timestamp-micros"
	nDuration        // time.Duration: int "time-millis", long "time-micros"
	nDecimal         // *big.Rat: bytes or fixed "decimal"
	nArray           // []any
	nMap             // map[string]any
	nRecord          // map[string]any
	nUnion           // nil, or map[string]any{branch: value}
)

type logical uint8

const (
	lNone logical = iota
	lDate
	lTimeMillis
	lTimeMicros
	lTimestampMillis
	lTimestampMicros
	lDecimal
)

// fnode is one node of a writer schema as goavro reads it. Named types are shared, so
// the tree may be cyclic.
type fnode struct {
	nat native
	// wire is how the value is encoded: nat, or for logical types the underlying nInt,
	// nLong, nBytes or nFixed.
	wire     native
	logical  logical
	scale    int64    // decimal
	size     int      // fixed
	symbols  []string // enum
	fields   []ffield // record
	branches []*fnode // union
	items    *fnode   // array items, map values
}

type ffield struct {
	name string
	typ  *fnode
}

// errUnsupported marks a schema feature the fast path leaves to goavro.
var errUnsupported = errors.New("not supported by the fast path")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUnsupported}, args...)...)
}

// parseFast parses schema text into a node tree. Only call it on text goavro compiled:
// it does not re-validate what goavro checks.
func parseFast(text string) (*fnode, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, err
	}
	p := fparser{names: make(map[string]*fnode)}
	return p.parse(v, "")
}

type fparser struct {
	names map[string]*fnode // full name → node
}

func (p *fparser) parse(v any, ens string) (*fnode, error) {
	switch s := v.(type) {
	case string:
		return p.named(s, ens)
	case []any:
		n := &fnode{nat: nUnion, wire: nUnion}
		for _, b := range s {
			sub, err := p.parse(b, ens)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, sub)
		}
		return n, nil
	case map[string]any:
		return p.object(s, ens)
	}
	return nil, unsupported("schema element %T", v)
}

func primitive(s string) native {
	switch s {
	case "null":
		return nNull
	case "boolean":
		return nBool
	case "int":
		return nInt
	case "long":
		return nLong
	case "float":
		return nFloat
	case "double":
		return nDouble
	case "bytes":
		return nBytes
	case "string":
		return nString
	}
	return 0
}

// named resolves a type name the way goavro does: as written first, then in the
// enclosing namespace.
func (p *fparser) named(s, ens string) (*fnode, error) {
	if k := primitive(s); k != 0 {
		return &fnode{nat: k, wire: k}, nil
	}
	if n, ok := p.names[s]; ok {
		return n, nil
	}
	if ens != "" {
		if n, ok := p.names[ens+"."+s]; ok {
			return n, nil
		}
	}
	return nil, unsupported("type name %q", s)
}

// declare registers a named type and returns the namespace its children inherit, as
// goavro's newName computes them.
func (p *fparser) declare(m map[string]any, ens string, n *fnode) (string, error) {
	name, _ := m["name"].(string)
	ns, _ := m["namespace"].(string)
	var full, inner string
	switch i := strings.LastIndexByte(name, '.'); {
	case i >= 0:
		full, inner = name, name[:i]
	case ns != "":
		full, inner = ns+"."+name, ns
	case ens != "":
		full, inner = ens+"."+name, ens
	default:
		full = name
	}
	if _, dup := p.names[full]; dup {
		return "", unsupported("type %q declared twice", full)
	}
	p.names[full] = n
	return inner, nil
}

func (p *fparser) object(m map[string]any, ens string) (*fnode, error) {
	t, ok := m["type"].(string)
	if !ok {
		// goavro reads a type object nested in "type" on its own, ignoring the outer keys.
		return p.parse(m["type"], ens)
	}
	lt := ""
	if v, ok := m["logicalType"]; ok {
		if lt, ok = v.(string); !ok {
			return nil, unsupported("logicalType of type %T", v)
		}
	}
	switch t {
	case "record":
		n := &fnode{nat: nRecord, wire: nRecord}
		inner, err := p.declare(m, ens, n) // before the fields, which may refer to it
		if err != nil {
			return nil, err
		}
		fields, _ := m["fields"].([]any)
		for _, f := range fields {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, unsupported("record field is not an object")
			}
			name, _ := fm["name"].(string)
			if strings.Contains(name, ".") {
				// goavro keys such a field by its last component.
				return nil, unsupported("field name with a dot")
			}
			sub, err := p.field(fm, inner)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, ffield{name: name, typ: sub})
		}
		return n, nil
	case "enum":
		n := &fnode{nat: nEnum, wire: nEnum}
		syms, _ := m["symbols"].([]any)
		for _, s := range syms {
			str, _ := s.(string)
			n.symbols = append(n.symbols, str)
		}
		if _, err := p.declare(m, ens, n); err != nil {
			return nil, err
		}
		return n, nil
	case "fixed":
		size, _ := m["size"].(float64)
		n := &fnode{nat: nFixed, wire: nFixed, size: int(size)}
		if lt == "decimal" {
			n.nat, n.logical, n.scale = nDecimal, lDecimal, scaleOf(m)
		}
		if _, err := p.declare(m, ens, n); err != nil {
			return nil, err
		}
		return n, nil
	case "array", "map":
		key, k := "items", nArray
		if t == "map" {
			key, k = "values", nMap
		}
		items, err := p.parse(m[key], ens)
		if err != nil {
			return nil, err
		}
		return &fnode{nat: k, wire: k, items: items}, nil
	case "error":
		return nil, unsupported("error type")
	}
	k := primitive(t)
	if k == 0 {
		// A reference written as an object; goavro ignores a logicalType on it.
		return p.named(t, ens)
	}
	n := &fnode{nat: k, wire: k}
	// Only the logical types goavro registers change the native type; it reads any other
	// as the bare primitive.
	switch {
	case k == nInt && lt == "date":
		n.nat, n.logical = nTime, lDate
	case k == nInt && lt == "time-millis":
		n.nat, n.logical = nDuration, lTimeMillis
	case k == nLong && lt == "time-micros":
		n.nat, n.logical = nDuration, lTimeMicros
	case k == nLong && lt == "timestamp-millis":
		n.nat, n.logical = nTime, lTimestampMillis
	case k == nLong && lt == "timestamp-micros":
		n.nat, n.logical = nTime, lTimestampMicros
	case k == nBytes && lt == "decimal":
		n.nat, n.logical, n.scale = nDecimal, lDecimal, scaleOf(m)
	case k == nString && lt == "validated-string":
		return nil, unsupported("validated-string")
	}
	return n, nil
}

// field parses a record field. goavro builds a field's codec from the field object
// itself, so a logicalType written next to a primitive "type" applies to it.
func (p *fparser) field(fm map[string]any, ens string) (*fnode, error) {
	t, ok := fm["type"].(string)
	if !ok {
		return p.parse(fm["type"], ens)
	}
	switch t {
	case "record", "enum", "fixed", "array", "map", "error":
		// goavro would declare a type named after the field; nobody writes this.
		return nil, unsupported("complex type keyword as a field's type")
	}
	if primitive(t) != 0 {
		return p.object(fm, ens)
	}
	return p.named(t, ens)
}

func scaleOf(m map[string]any) int64 {
	s, _ := m["scale"].(float64)
	return int64(s)
}
