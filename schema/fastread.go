package schema

import (
	"encoding/binary"
	"math"
	"math/big"
	"sync"
	"time"
	"unsafe"
)

// reader walks one body. s holds the same bytes as b: every string of the Event is a
// substring of it, so decoding a record allocates its text once, in one piece, rather
// than once per field. The strings of one Event therefore share one allocation the
// size of the body; a caller keeping a single field for long should copy it
// (strings.Clone) rather than pin the whole record.
type reader struct {
	b []byte
	s string
	i int
	// empty is the budget of zero-byte array items left, as the guard keeps it.
	empty int
	// singles backs the one-element slices of the fields a schema gives as a single string
	// (an email, a phone): one allocation per record instead of one per field.
	singles []string
	// numbers backs the *float64 fields (value, item prices) the same way.
	numbers []float64
}

// number returns a pointer to a copy of f, carved from r.numbers.
func (r *reader) number(f float64) *float64 {
	if len(r.numbers) == cap(r.numbers) {
		r.numbers = make([]float64, 0, 4)
	}
	r.numbers = append(r.numbers, f)
	return &r.numbers[len(r.numbers)-1]
}

// single returns []string{s}, carved from r.singles. The slice's capacity is its length,
// so an append to it copies instead of overwriting the next field's value.
func (r *reader) single(s string) []string {
	return append(r.carve(1), s)
}

// carve returns an empty slice with room for n strings, carved from r.singles: a record's
// string lists share one allocation. The capacity is n, so appending past it copies
// instead of overwriting the next list.
func (r *reader) carve(n int) []string {
	if cap(r.singles)-len(r.singles) < n {
		r.singles = make([]string, 0, max(n, 8))
	}
	l := len(r.singles)
	r.singles = r.singles[:l+n]
	return r.singles[l : l : l+n]
}

// maxMapKeys is how many keys of a skipped map are checked for duplicates without
// allocating.
const maxMapKeys = 16

// decode returns the Event and true, or false when goavro must decode this body. Its
// strings are substrings of one string holding the body: a copy, or, when the caller hands
// the body over (owned), the body's own memory.
func (p *fastProg) decode(body []byte, kind Kind, owned bool) (Event, bool) {
	var ev Event
	if !p.decodeInto(body, kind, owned, false, &ev) {
		return Event{}, false
	}
	return ev, true
}

// decodeInto is decode writing the Event into *dst (all of it when it reports true; dst is
// undefined otherwise). interpret runs the interpreter even where a generated decoder
// exists, for the tests that compare the two.
func (p *fastProg) decodeInto(body []byte, kind Kind, owned, interpret bool, dst *Event) bool {
	var s string
	if owned {
		s = unsafe.String(unsafe.SliceData(body), len(body))
	} else {
		s = string(body)
	}
	r := reader{b: body, s: s, empty: maxEmptyItems}
	// The record readers take o's address, so it would escape: a fresh one cost every
	// record an allocation of over a kilobyte. finish copies what the Event keeps.
	o := fastOuts.Get().(*fastOut)
	defer func() {
		*o = fastOut{}
		fastOuts.Put(o)
	}()
	var ok bool
	if p.gen != 0 && !interpret {
		ok = runGenerated(p.gen, &r, o, p.steps)
	} else {
		ok = r.record(p.root, o, 0)
	}
	if !ok || r.i != len(r.b) {
		return false
	}
	return o.finish(kind, dst)
}

var fastOuts = sync.Pool{New: func() any { return new(fastOut) }}

// finish applies what toEvent does after reading the fields, into *dst.
func (o *fastOut) finish(kind Kind, dst *Event) bool {
	*dst = o.ev
	ev := dst
	ev.Kind = kind
	if ev.EventID == "" || ev.EventName == "" || ev.PixelID == "" {
		return false
	}
	t := o.eventTime
	switch {
	case t <= 0:
		return false
	case t > millisThreshold:
		t /= 1000
		if t > millisThreshold {
			return false
		}
	}
	ev.EventTime = t

	u := &ev.User
	u.Emails = append(o.email, o.custEmails...)
	u.Phones = append(o.phone, o.custPhones...)
	u.ExternalIDs = append(o.externalID, o.custExtID...)

	if o.hasOrig {
		switch {
		case o.orig.EventTime < 0:
			return false
		case o.orig.EventTime > millisThreshold:
			o.orig.EventTime /= 1000
		}
		if o.orig != (OriginalEventData{}) {
			orig := o.orig
			ev.OriginalEvent = &orig
		}
	}
	if o.hasApp {
		app := o.app
		ev.App = &app
	}
	if o.hasStore && o.store != (StoreData{}) {
		store := o.store
		ev.Custom.Store = &store
	}
	if ev.ActionSource == "" && kind == KindWeb {
		ev.ActionSource = "website"
	}
	return true
}

func (r *reader) record(p *fastRec, o *fastOut, depth int) bool {
	if depth > maxDepth {
		return false
	}
	for i := range p.steps {
		st := &p.steps[i]
		var ok bool
		if st.t == nil {
			ok = r.skip(st.n, depth+1)
		} else {
			ok = r.field(st, o, depth+1)
		}
		if !ok {
			return false
		}
	}
	return true
}

// branch reads a union's branch index and returns the branch and its index; for any
// other node it returns n and 0.
func (r *reader) branch(n *fnode) (*fnode, int, bool) {
	if n.nat != nUnion {
		return n, 0, true
	}
	i, ok := r.varint()
	if !ok || i < 0 || i >= int64(len(n.branches)) {
		return nil, 0, false
	}
	return n.branches[i], int(i), true
}

func (r *reader) field(st *fastStep, o *fastOut, depth int) bool {
	t := st.t
	n, bi, ok := r.branch(st.n)
	if !ok {
		return false
	}
	switch t.conv {
	case cStr:
		s, ok := r.str(n)
		*t.str(o) = s
		return ok
	case cStrs:
		v, ok := r.strs(n)
		*t.strs(o) = v
		return ok
	case cSlots:
		v, ok := r.slots(n)
		*t.strs(o) = v
		return ok
	case cLong:
		v, ok := r.long(n)
		*t.long(o) = v
		return ok
	case cInt32:
		v, ok := r.long(n)
		if v < math.MinInt32 || v > math.MaxInt32 {
			return false
		}
		*t.i32(o) = int32(v)
		return ok
	case cBool:
		switch n.nat {
		case nNull:
			*t.b(o) = false
			return true
		case nBool:
			v, ok := r.boolean()
			*t.b(o) = v
			return ok
		}
		return false
	case cOptBool:
		switch n.nat {
		case nNull:
			*t.pb(o) = nil
			return true
		case nBool:
			v, ok := r.boolean()
			*t.pb(o) = &v
			return ok
		}
		return false
	case cDouble:
		v, ok := r.double(n)
		*t.dbl(o) = v
		return ok
	case cEventTime:
		v, ok := r.eventTime(n)
		o.eventTime = v
		return ok
	case cRecord:
		a := &st.alts[bi]
		switch a.act {
		case actAbsent:
			return true
		case actRecord:
			if t.mark != nil {
				t.mark(o)
			}
			return r.record(a.rec, o, depth)
		case actEmpty:
			if t.mark != nil {
				t.mark(o)
			}
			return r.skip(n, depth)
		}
		return false
	case cContents:
		a := &st.alts[bi]
		switch a.act {
		case actAbsent:
			o.ev.Custom.Contents = nil
			return true
		case actRecord:
			v, ok := r.contents(n, a.items, o, depth)
			o.ev.Custom.Contents = v
			return ok
		}
		return false
	}
	return false
}

// str converts like mapper.str.
func (r *reader) str(n *fnode) (string, bool) {
	switch n.nat {
	case nNull:
		return "", true
	case nString, nBytes:
		return r.lenStr()
	case nFixed:
		if n.size < 0 || n.size > len(r.b)-r.i {
			return "", false
		}
		s := r.s[r.i : r.i+n.size]
		r.i += n.size
		return s, true
	case nEnum:
		return r.enum(n)
	}
	return "", false
}

// strs converts like mapper.strs: a single string or an array, empty strings dropped.
func (r *reader) strs(n *fnode) ([]string, bool) {
	switch n.nat {
	case nNull:
		return nil, true
	case nString, nEnum:
		s, ok := r.str(n)
		if !ok || s == "" {
			return nil, ok
		}
		return r.single(s), true
	case nArray:
		return r.stringArray(n.items, false)
	}
	return nil, false
}

// slots converts like mapper.slots: an array kept position for position.
func (r *reader) slots(n *fnode) ([]string, bool) {
	switch n.nat {
	case nNull:
		return nil, true
	case nArray:
		return r.stringArray(n.items, true)
	}
	return nil, false
}

// stringArray reads an array whose items toEvent reads as strings, keeping or dropping
// empty ones. A result without items is nil, as toEvent returns.
func (r *reader) stringArray(items *fnode, keepEmpty bool) ([]string, bool) {
	var out []string
	for {
		n, ok := r.blockCount()
		if !ok {
			return nil, false
		}
		if n == 0 {
			return out, true
		}
		for ; n > 0; n-- {
			b, _, ok := r.branch(items)
			if !ok {
				return nil, false
			}
			var s string
			switch b.nat {
			case nNull:
			case nString, nEnum, nBytes, nFixed:
				if s, ok = r.str(b); !ok {
					return nil, false
				}
			default:
				return nil, false
			}
			if s == "" && !keepEmpty {
				continue
			}
			if out == nil {
				// n is bounded by the bytes left only for items that take a byte; the
				// capacity is a hint, so it must not trust n further.
				out = r.carve(int(min(n, int64(len(r.b)-r.i+1))))
			}
			out = append(out, s)
		}
	}
}

// contents converts like mapper.contents.
func (r *reader) contents(n *fnode, items []fastAlt, o *fastOut, depth int) ([]Content, bool) {
	var out []Content
	for {
		cnt, ok := r.blockCount()
		if !ok {
			return nil, false
		}
		if cnt == 0 {
			return out, true
		}
		for ; cnt > 0; cnt-- {
			b, bi, ok := r.branch(n.items)
			if !ok {
				return nil, false
			}
			if out == nil {
				out = make([]Content, 0, min(cnt, int64(len(r.b)-r.i+1)))
			}
			at := r.i
			switch a := &items[bi]; a.act {
			case actRecord:
				out = append(out, Content{})
				o.item = &out[len(out)-1]
				ok = r.record(a.rec, o, depth+1)
				o.item = nil
			case actEmpty:
				out = append(out, Content{})
				ok = r.skip(b, depth+1)
			default:
				ok = false
			}
			if !ok || !r.spend(at) {
				return nil, false
			}
		}
	}
}

// spend charges an array item that started at offset at to the zero-byte budget when it
// took no bytes.
func (r *reader) spend(at int) bool {
	if r.i != at {
		return true
	}
	r.empty--
	return r.empty >= 0
}

// long converts like mapper.long.
func (r *reader) long(n *fnode) (int64, bool) {
	switch n.nat {
	case nNull:
		return 0, true
	case nInt:
		v, ok := r.int32()
		return int64(v), ok
	case nLong:
		return r.varint()
	}
	return 0, false
}

// double converts like mapper.double, including its finiteness check.
func (r *reader) double(n *fnode) (*float64, bool) {
	var f float64
	switch n.nat {
	case nNull:
		return nil, true
	case nDouble:
		if len(r.b)-r.i < 8 {
			return nil, false
		}
		f = math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
		r.i += 8
	case nFloat:
		if len(r.b)-r.i < 4 {
			return nil, false
		}
		f = float64(math.Float32frombits(binary.LittleEndian.Uint32(r.b[r.i:])))
		r.i += 4
	case nInt, nLong:
		v, ok := r.long(n)
		if !ok {
			return nil, false
		}
		f = float64(v)
	case nDecimal:
		var raw []byte
		if n.wire == nFixed {
			if n.size < 0 || n.size > len(r.b)-r.i {
				return nil, false
			}
			raw = r.b[r.i : r.i+n.size]
			r.i += n.size
		} else {
			a, e, ok := r.span()
			if !ok {
				return nil, false
			}
			raw = r.b[a:e]
		}
		f = decimalFloat(raw, n.scale)
	default:
		return nil, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return r.number(f), true
}

// decimalFloat is the float64 nearest the two's-complement unscaled value raw divided
// by 10^scale, as goavro's *big.Rat gives it to mapper.double.
func decimalFloat(raw []byte, scale int64) float64 {
	num := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		num.Sub(num, new(big.Int).Lsh(big.NewInt(1), uint(len(raw))*8))
	}
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil)
	f, _ := new(big.Rat).SetFrac(num, den).Float64()
	return f
}

// eventTime reads event_time as mapper.eventTime does before its checks: a timestamp
// logical type as Unix seconds, or an int or long as is.
func (r *reader) eventTime(n *fnode) (int64, bool) {
	if n.nat != nTime {
		return r.long(n)
	}
	var t time.Time
	switch n.logical {
	case lDate:
		d, ok := r.int32()
		if !ok {
			return 0, false
		}
		t = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(d)).UTC()
	case lTimestampMillis, lTimestampMicros:
		v, ok := r.varint()
		if !ok {
			return 0, false
		}
		unit := int64(1e3) // goavro's own arithmetic, overflow included
		if n.logical == lTimestampMicros {
			unit = 1e6
		}
		sec := v / unit
		t = time.Unix(sec, (v-sec*unit)*(1e9/unit)).UTC()
	default:
		return 0, false
	}
	return t.Unix(), true
}

// unionIndex reads a union's branch index, or returns -1 when it is not below n.
func (r *reader) unionIndex(n int) int {
	i, ok := r.varint()
	if !ok || i < 0 || i >= int64(n) {
		return -1
	}
	return int(i)
}

// varint reads a zig-zag long, as goavro does within the 10 bytes the guard allows.
func (r *reader) varint() (int64, bool) {
	// Most varints in an event (union branches, string lengths) are one byte.
	if r.i < len(r.b) {
		if c := r.b[r.i]; c < 0x80 {
			r.i++
			return int64(c>>1) ^ -int64(c&1), true
		}
	}
	var u uint64
	for j := 0; j < 10 && r.i+j < len(r.b); j++ {
		c := r.b[r.i+j]
		u |= uint64(c&0x7f) << (7 * j)
		if c < 0x80 {
			r.i += j + 1
			return int64(u>>1) ^ -int64(u&1), true
		}
	}
	return 0, false
}

// int32 reads an Avro int as goavro does: the long's bits truncated to 32.
func (r *reader) int32() (int32, bool) {
	start := r.i
	if _, ok := r.varint(); !ok {
		return 0, false
	}
	var u uint64
	for j := start; j < r.i; j++ {
		u |= uint64(r.b[j]&0x7f) << (7 * (j - start))
	}
	return int32(uint32(u>>1)) ^ -int32(u&1), true
}

func (r *reader) boolean() (bool, bool) {
	if r.i >= len(r.b) || r.b[r.i] > 1 {
		return false, false // goavro rejects any byte but 0 and 1
	}
	r.i++
	return r.b[r.i-1] == 1, true
}

// span reads a length-prefixed value and returns its bounds in b.
func (r *reader) span() (int, int, bool) {
	n, ok := r.varint()
	if !ok || n < 0 || n > int64(len(r.b)-r.i) {
		return 0, 0, false
	}
	a := r.i
	r.i += int(n)
	return a, r.i, true
}

func (r *reader) lenStr() (string, bool) {
	a, e, ok := r.span()
	if !ok {
		return "", false
	}
	return r.s[a:e], true
}

func (r *reader) enum(n *fnode) (string, bool) {
	i, ok := r.varint()
	if !ok || i < 0 || i >= int64(len(n.symbols)) {
		return "", false
	}
	return n.symbols[i], true
}

// blockCount reads an array or map block header and returns its item count, bounded
// like the guard bounds it: a count no remaining bytes can hold is corrupt.
func (r *reader) blockCount() (int64, bool) {
	n, ok := r.varint()
	if !ok {
		return 0, false
	}
	if n < 0 {
		n = -n
		if _, ok := r.varint(); !ok || n < 0 {
			return 0, false
		}
	}
	if n > int64(len(r.b)-r.i) && n > maxEmptyItems {
		return 0, false
	}
	return n, true
}

// skip reads past a value nobody maps, still rejecting what goavro would reject.
func (r *reader) skip(n *fnode, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch n.wire {
	case nNull:
		return true
	case nBool:
		_, ok := r.boolean()
		return ok
	case nInt, nLong:
		_, ok := r.varint()
		return ok
	case nEnum:
		_, ok := r.enum(n)
		return ok
	case nFloat, nDouble, nFixed:
		size := n.size
		switch n.wire {
		case nFloat:
			size = 4
		case nDouble:
			size = 8
		}
		if size < 0 || size > len(r.b)-r.i {
			return false
		}
		r.i += size
		return true
	case nBytes, nString:
		_, _, ok := r.span()
		return ok
	case nRecord:
		for _, f := range n.fields {
			if !r.skip(f.typ, depth+1) {
				return false
			}
		}
		return true
	case nUnion:
		b, _, ok := r.branch(n)
		return ok && r.skip(b, depth+1)
	case nArray:
		for {
			cnt, ok := r.blockCount()
			if !ok {
				return false
			}
			if cnt == 0 {
				return true
			}
			for ; cnt > 0; cnt-- {
				at := r.i
				if !r.skip(n.items, depth+1) || !r.spend(at) {
					return false
				}
			}
		}
	case nMap:
		// goavro rejects duplicate keys. The first keys are compared on the stack; only a
		// map bigger than that, rare in events, pays for a set.
		var keys [maxMapKeys]string
		var more map[string]struct{}
		nkeys := 0
		for {
			cnt, ok := r.blockCount()
			if !ok {
				return false
			}
			if cnt == 0 {
				return true
			}
			for ; cnt > 0; cnt-- {
				key, ok := r.lenStr()
				if !ok {
					return false
				}
				for _, k := range keys[:nkeys] {
					if k == key {
						return false
					}
				}
				if nkeys < maxMapKeys {
					keys[nkeys] = key
					nkeys++
				} else {
					if more == nil {
						more = make(map[string]struct{})
					}
					if _, dup := more[key]; dup {
						return false
					}
					more[key] = struct{}{}
				}
				if !r.skip(n.items, depth+1) {
					return false
				}
			}
		}
	}
	return false
}
