package sink

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalization follows Meta's customer-information rules [D-cust] and, where the doc is
// silent, the newest official implementation (capi-param-builder, C-pb), because that is what
// the browser pixel hashes with: a server-side value only matches if it is normalized the same
// way. Every function here returns the plaintext that gets hashed; values that already look
// hashed are passed through (see classifyHashed).

// Drop reasons: why a user_data or custom_data value was left out of an event. They are stable
// snake_case strings meant for metrics labels; they never carry the value itself.
const (
	DropInvalidEmail       = "invalid_email"
	DropInvalidPhone       = "invalid_phone"
	DropInvalidName        = "invalid_name"
	DropInvalidCity        = "invalid_city"
	DropInvalidState       = "invalid_state"
	DropInvalidZip         = "invalid_zip"
	DropUnknownCountry     = "unknown_country"
	DropUnknownGender      = "unknown_gender"
	DropInvalidDateOfBirth = "invalid_date_of_birth"
	DropDateOutOfRange     = "date_of_birth_out_of_range"
	DropInvalidExternalID  = "invalid_external_id"
	DropInvalidIP          = "invalid_ip_address"
	DropInvalidLeadID      = "invalid_lead_id"
	DropInvalidCurrency    = "invalid_currency"
	DropInvalidNumber      = "invalid_number"

	DropInvalidFBLoginID        = "invalid_fb_login_id"
	DropUnknownMessagingChannel = "unknown_messaging_channel"
	DropUnknownSegmentation     = "unknown_customer_segmentation"
	DropInvalidDeliveryCategory = "invalid_delivery_category"
)

// Dropped records one value Build left out and why. It never holds the value: it is meant
// to be counted and logged.
type Dropped struct {
	// Field is the wire key (em, ph, …, currency, value).
	Field  string
	Reason string
}

// NormalizeError says a value could not be normalized. It carries the field and the reason,
// never the value.
type NormalizeError struct {
	Field  string
	Reason string
}

func (e *NormalizeError) Error() string {
	return "sink: cannot normalize " + e.Field + ": " + e.Reason
}

// Wire keys of the hashed user_data fields.
const (
	fieldEm         = "em"
	fieldPh         = "ph"
	fieldFn         = "fn"
	fieldLn         = "ln"
	fieldDb         = "db"
	fieldGe         = "ge"
	fieldCt         = "ct"
	fieldSt         = "st"
	fieldZp         = "zp"
	fieldCountry    = "country"
	fieldExternalID = "external_id"
)

// appendFunc appends the normalized form of raw to dst. reason is "" on success. tmp is
// scratch space the function may overwrite and return grown.
type appendFunc func(dst, tmp []byte, raw string, ctx *normContext) (out, tmpOut []byte, reason string)

// normContext carries what a few normalizers need beyond the value.
type normContext struct {
	now time.Time
	// usZip is set when the event's only country is the US, so zips keep their first five
	// digits [D-cust]; without it a 9-digit string could be another country's code.
	usZip bool
}

// NormalizeEmail trims and lowercases, then requires something shaped like an address
// (one @, a dotted domain, no spaces): Meta's rule plus the SDKs' validation [D-cust, C-pb].
func NormalizeEmail(raw string) (string, error) {
	return normalizeString(fieldEm, appendEmail, raw, nil)
}

// NormalizePhone keeps digits only and strips leading zeros [D-cust, C-pb phoneUtil.js]. The
// country code must already be there (no SDK adds one); 7–15 digits is E.164's range.
func NormalizePhone(raw string) (string, error) {
	return normalizeString(fieldPh, appendPhone, raw, nil)
}

// NormalizeFirstName lowercases, strips whitespace and punctuation, keeps non-Latin letters,
// and composes to NFC so "Vale\u0301ry" and "Valéry" hash alike [D-cust, C-pb stringUtil].
func NormalizeFirstName(raw string) (string, error) {
	return normalizeString(fieldFn, appendName, raw, nil)
}

// NormalizeLastName is NormalizeFirstName for ln.
func NormalizeLastName(raw string) (string, error) {
	return normalizeString(fieldLn, appendName, raw, nil)
}

// NormalizeCity lowercases and keeps letters only: no punctuation, spaces or digits
// ("New York" → "newyork") [D-cust]. Non-Latin letters are kept, unlike C-pb, which nulls
// them: Meta's rule only says "no special characters", and dropping a Greek city loses a key.
func NormalizeCity(raw string) (string, error) { return normalizeString(fieldCt, appendCity, raw, nil) }

// NormalizeState maps US state and Canadian province names to their 2-letter code, lowercase
// ("California" → "ca") [D-cust, C-pb]; anything else is lowercased letters only. Unlike
// C-pb it does not truncate unknown names to two letters: a non-US region's name truncated
// would match nothing.
func NormalizeState(raw string) (string, error) {
	return normalizeString(fieldSt, appendState, raw, nil)
}

// NormalizeZip lowercases, keeps the part before a dash and removes spaces ("94035-1234" →
// "94035", "M1 1AE" → "m11ae") [D-cust]. When country is "us" (an alpha-2 code, as
// NormalizeCountry returns it) the result must be digits and is cut to the first five.
func NormalizeZip(raw, country string) (string, error) {
	return normalizeString(fieldZp, appendZip, raw, &normContext{usZip: country == "us"})
}

// NormalizeCountry maps names, common aliases and alpha-3 codes to ISO-3166-1 alpha-2,
// lowercase ("United States" → "us") [D-cust]; a valid alpha-2 code passes.
func NormalizeCountry(raw string) (string, error) {
	return normalizeString(fieldCountry, appendCountry, raw, nil)
}

// NormalizeGender maps f/m and their usual synonyms (female, woman, mrs, male, man, mr, …)
// to "f" or "m" [D-cust, C-pb genderUtil]; anything else is dropped rather than guessed.
func NormalizeGender(raw string) (string, error) {
	return normalizeString(fieldGe, appendGender, raw, nil)
}

// NormalizeDateOfBirth reads the formats people write (YYYY-MM-DD, MM/DD/YYYY, DD.MM.YYYY,
// YYYYMMDD, "16 Feb 1997", an RFC 3339 timestamp, …) and returns YYYYMMDD with a year from
// 1900 to now's year [D-cust, C-pb dobUtil]. Where day and month are ambiguous the separator
// decides: "/" is read US-style (MM/DD/YYYY), "." and "-" European-style (DD.MM.YYYY);
// a part above 12 overrides that.
func NormalizeDateOfBirth(raw string, now time.Time) (string, error) {
	return normalizeString(fieldDb, appendDateOfBirth, raw, &normContext{now: now})
}

// NormalizeExternalID trims, lowercases and removes all whitespace. Meta leaves the form to
// the advertiser but it must be the same on every channel [D-xid]; this is the form the newest
// Node SDK (through C-pb) and Segment use before hashing, so pixel-side ids match.
func NormalizeExternalID(raw string) (string, error) {
	return normalizeString(fieldExternalID, appendExternalID, raw, nil)
}

func normalizeString(field string, f appendFunc, raw string, ctx *normContext) (string, error) {
	if ctx == nil {
		ctx = &normContext{now: time.Now()}
	}
	s := strings.TrimSpace(raw)
	switch classifyHashed(s) {
	case hashedHex:
		return strings.ToLower(s), nil
	case hashedParamBuilder:
		return s, nil
	}
	out, _, reason := f(nil, nil, s, ctx)
	if reason != "" {
		return "", &NormalizeError{Field: field, Reason: reason}
	}
	return string(out), nil
}

// isASCII reports whether s needs no Unicode handling, which is the common case and lets
// the normalizers skip NFC.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// nfc returns s composed to NFC. ASCII and already-composed input (nearly all of it) is
// returned as is; only decomposed input (macOS, some CRMs) pays for a copy.
func nfc(tmp []byte, s string) (string, []byte) {
	if isASCII(s) || norm.NFC.IsNormalString(s) {
		return s, tmp
	}
	tmp = norm.NFC.AppendString(tmp[:0], s)
	return string(tmp), tmp
}

func appendLowerRune(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		c := byte(r)
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return append(dst, c)
	}
	return utf8.AppendRune(dst, unicode.ToLower(r))
}

// emailSpecials may not appear in an address we accept, even quoted: a list separator or
// a display name ("Mary <mary@example.com>") slipped into the field.
const emailSpecials = `,;:<>()[]\"`

// emailASCII maps each ASCII byte of an email address to what is kept, lowercased, or to
// 0 when the byte makes the address invalid (space, control, emailSpecials). Built from
// the same predicates as the rune path, so both judge ASCII alike; addresses are nearly
// always ASCII, and the table spares them the rune decoding and Unicode lookups.
var emailASCII = func() (t [utf8.RuneSelf]byte) {
	for c := range utf8.RuneSelf {
		r := rune(c)
		if !emailRuneInvalid(r) {
			t[c] = byte(unicode.ToLower(r))
		}
	}
	return t
}()

func emailRuneInvalid(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError || strings.ContainsRune(emailSpecials, r)
}

func appendEmail(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	at := -1
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			l := emailASCII[c]
			if l == 0 {
				return dst[:start], tmp, DropInvalidEmail
			}
			if l == '@' {
				if at >= 0 {
					return dst[:start], tmp, DropInvalidEmail
				}
				at = len(dst) - start
			}
			dst = append(dst, l)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if emailRuneInvalid(r) {
			return dst[:start], tmp, DropInvalidEmail
		}
		dst = appendLowerRune(dst, r)
		i += size
	}
	if !emailShapeOK(dst[start:], at) {
		return dst[:start], tmp, DropInvalidEmail
	}
	return dst, tmp, ""
}

// emailShapeOK checks a lowercased address e whose only '@' is at index at: a local part of
// 1 to 64 bytes, 254 bytes in all, and a domain of dot-separated labels ending in a
// top-level domain of two or more characters.
func emailShapeOK(e []byte, at int) bool {
	if at < 1 || at > 64 || len(e) > 254 {
		return false
	}
	domain := e[at+1:]
	lastDot := -1
	for i, c := range domain {
		if c == '.' {
			if i == 0 || i == len(domain)-1 || domain[i-1] == '.' {
				return false
			}
			lastDot = i
		}
	}
	return lastDot >= 0 && len(domain)-lastDot-1 >= 2
}

func appendPhone(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	for i := 0; i < len(s); i++ {
		c := s[i]
		// "+44 (0)20 …": the (0) is the domestic trunk prefix written next to the country
		// code; keeping it would hash 44020… which no one else produces.
		if c == '(' && i+2 < len(s) && s[i+1] == '0' && s[i+2] == ')' {
			i += 2
			continue
		}
		if '0' <= c && c <= '9' {
			if c == '0' && len(dst) == start {
				continue // leading zeros: international "00" prefix or a stray trunk 0
			}
			dst = append(dst, c)
		}
	}
	if n := len(dst) - start; n < 7 || n > 15 {
		return dst[:start], tmp, DropInvalidPhone
	}
	return dst, tmp, ""
}

// letterFilter says which runes a text field keeps after lowercasing.
type letterFilter func(r rune) bool

// keepName keeps what a name is made of: letters in any script, their combining marks, and
// digits (C-pb keeps digits; dropping them would diverge from the pixel's hash).
func keepName(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
}

// keepLetters keeps letters in any script and their combining marks.
func keepLetters(r rune) bool { return unicode.IsLetter(r) || unicode.IsMark(r) }

// appendFiltered appends NFC(lowercase(s)) restricted to keep, and reports whether it holds
// at least one letter.
func appendFiltered(dst, tmp []byte, s string, keep letterFilter) ([]byte, []byte, bool) {
	if isASCII(s) {
		// ASCII is already NFC, and stays so with bytes lowercased or left out.
		letter := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !keep(rune(c)) {
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			letter = letter || 'a' <= c && c <= 'z'
			dst = append(dst, c)
		}
		return dst, tmp, letter
	}
	return appendFilteredUnicode(dst, tmp, s, keep)
}

// appendFilteredUnicode is appendFiltered for any UTF-8 input.
func appendFilteredUnicode(dst, tmp []byte, s string, keep letterFilter) ([]byte, []byte, bool) {
	start := len(dst)
	s, tmp = nfc(tmp, s)
	letter := false
	for _, r := range s {
		if !keep(r) {
			continue
		}
		if !letter && unicode.IsLetter(r) {
			letter = true
		}
		dst = appendLowerRune(dst, r)
	}
	// Dropping a character can bring a base letter and a combining mark together
	// ("A\u200d\u0301" → "a\u0301"), so compose again: normalizing the output a second
	// time must give the same bytes, hence the same hash.
	if out := dst[start:]; !norm.NFC.IsNormal(out) {
		tmp = norm.NFC.Append(tmp[:0], out...)
		dst = append(dst[:start], tmp...)
	}
	return dst, tmp, letter
}

func appendName(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	dst, tmp, ok := appendFiltered(dst, tmp, s, keepName)
	if !ok {
		return dst[:start], tmp, DropInvalidName
	}
	return dst, tmp, ""
}

func appendCity(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	dst, tmp, ok := appendFiltered(dst, tmp, s, keepLetters)
	if !ok {
		return dst[:start], tmp, DropInvalidCity
	}
	return dst, tmp, ""
}

func appendState(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	dst, tmp, ok := appendFiltered(dst, tmp, s, keepLetters)
	if !ok {
		return dst[:start], tmp, DropInvalidState
	}
	if code, found := stateByName[string(dst[start:])]; found {
		dst = append(dst[:start], code...)
	}
	return dst, tmp, ""
}

func appendZip(dst, tmp []byte, s string, ctx *normContext) ([]byte, []byte, string) {
	start := len(dst)
	if i := strings.IndexByte(s, '-'); i >= 0 {
		s = s[:i]
	}
	digits := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			continue
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'z':
			digits = false
		case 'A' <= c && c <= 'Z':
			digits = false
			c += 'a' - 'A'
		default:
			// Postal codes are ASCII letters and digits everywhere; anything else is
			// not a zip (an address line pasted into the field, say).
			return dst[:start], tmp, DropInvalidZip
		}
		dst = append(dst, c)
	}
	n := len(dst) - start
	if ctx != nil && ctx.usZip {
		if !digits || n < 5 {
			return dst[:start], tmp, DropInvalidZip
		}
		return dst[:start+5], tmp, ""
	}
	if n < 2 {
		return dst[:start], tmp, DropInvalidZip
	}
	return dst, tmp, ""
}

func appendCountry(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	dst, tmp, ok := appendFiltered(dst, tmp, s, keepLetters)
	if !ok {
		return dst[:start], tmp, DropUnknownCountry
	}
	code, found := countryByName[string(dst[start:])]
	if !found {
		return dst[:start], tmp, DropUnknownCountry
	}
	return append(dst[:start], code...), tmp, ""
}

func appendGender(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	dst, tmp, ok := appendFiltered(dst, tmp, s, keepLetters)
	if !ok {
		return dst[:start], tmp, DropUnknownGender
	}
	g, found := genderBySynonym[string(dst[start:])]
	if !found {
		return dst[:start], tmp, DropUnknownGender
	}
	return append(dst[:start], g), tmp, ""
}

func appendExternalID(dst, tmp []byte, s string, _ *normContext) ([]byte, []byte, string) {
	start := len(dst)
	for _, r := range s {
		if unicode.IsSpace(r) {
			continue
		}
		dst = appendLowerRune(dst, r)
	}
	if len(dst) == start {
		return dst, tmp, DropInvalidExternalID
	}
	return dst, tmp, ""
}

// dateToken is one run of digits or letters in a date string.
type dateToken struct {
	s     string
	digit bool
}

func appendDateOfBirth(dst, tmp []byte, s string, ctx *normContext) ([]byte, []byte, string) {
	var toks [4]dateToken
	n := 0
	sep := byte(0)
	for i := 0; i < len(s); {
		c := s[i]
		isDigit := '0' <= c && c <= '9'
		isLetter := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !isDigit && !isLetter {
			if n > 0 && sep == 0 && (c == '/' || c == '.' || c == '-') {
				sep = c
			}
			i++
			continue
		}
		j := i + 1
		for j < len(s) {
			d := s[j]
			if isDigit != ('0' <= d && d <= '9') || (!isDigit && !('a' <= d|0x20 && d|0x20 <= 'z')) {
				break
			}
			j++
		}
		if n == len(toks) {
			// An RFC 3339 timestamp ("1997-02-16T00:00:00Z") has more runs; only a
			// year-first date may carry a time, so keep the first three.
			if !(toks[0].digit && len(toks[0].s) == 4) {
				return dst, tmp, DropInvalidDateOfBirth
			}
			break
		}
		toks[n] = dateToken{s: s[i:j], digit: isDigit}
		n++
		i = j
	}
	var y, m, d int
	switch {
	case n == 1 && toks[0].digit && len(toks[0].s) == 8:
		y, m, d = atoi(toks[0].s[:4]), atoi(toks[0].s[4:6]), atoi(toks[0].s[6:])
	case n >= 3 && toks[0].digit && len(toks[0].s) == 4:
		if n > 3 && !isTimeMarker(toks[3]) {
			return dst, tmp, DropInvalidDateOfBirth
		}
		y = atoi(toks[0].s)
		m = monthOf(toks[1])
		d = dayOf(toks[2])
	case n == 3:
		var ok bool
		y, m, d, ok = yearLast(toks[0], toks[1], toks[2], sep)
		if !ok {
			return dst, tmp, DropInvalidDateOfBirth
		}
	default:
		return dst, tmp, DropInvalidDateOfBirth
	}
	if m < 1 || m > 12 || d < 1 || d > 31 || y < 0 {
		return dst, tmp, DropInvalidDateOfBirth
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d { // 31 April, 29 February of a common year
		return dst, tmp, DropInvalidDateOfBirth
	}
	now := ctx.now
	if now.IsZero() {
		now = time.Now()
	}
	if y < 1900 || y > now.Year() || t.After(now) {
		return dst, tmp, DropDateOutOfRange
	}
	dst = appendPadded(dst, y, 4)
	dst = appendPadded(dst, m, 2)
	dst = appendPadded(dst, d, 2)
	return dst, tmp, ""
}

// isTimeMarker accepts the "T" of an RFC 3339 timestamp or the hour after a space.
func isTimeMarker(t dateToken) bool {
	if t.digit {
		return len(t.s) <= 2
	}
	return t.s == "T" || t.s == "t" || (len(t.s) > 1 && (t.s[0] == 'T' || t.s[0] == 't'))
}

// yearLast resolves D/M/Y vs M/D/Y for "a b YYYY" and "a Mon YYYY" / "Mon a YYYY".
func yearLast(a, b, c dateToken, sep byte) (y, m, d int, ok bool) {
	if !c.digit || len(c.s) != 4 {
		return 0, 0, 0, false
	}
	y = atoi(c.s)
	switch {
	case !a.digit && b.digit:
		return y, monthOf(a), dayOf(b), true
	case a.digit && !b.digit:
		return y, monthOf(b), dayOf(a), true
	case !a.digit || !b.digit:
		return 0, 0, 0, false
	}
	p, q := dayOf(a), dayOf(b)
	switch {
	case p > 12 && q <= 12:
		return y, q, p, true
	case q > 12 && p <= 12:
		return y, p, q, true
	case sep == '/':
		return y, p, q, true
	default:
		return y, q, p, true
	}
}

func monthOf(t dateToken) int {
	if t.digit {
		if len(t.s) > 2 {
			return -1
		}
		return atoi(t.s)
	}
	if len(t.s) < 3 {
		return -1
	}
	var key [3]byte
	for i := range key {
		key[i] = t.s[i] | 0x20
	}
	if m, ok := monthByPrefix[string(key[:])]; ok {
		return m
	}
	return -1
}

func dayOf(t dateToken) int {
	if !t.digit || len(t.s) > 2 {
		return -1
	}
	return atoi(t.s)
}

// atoi parses a short run of ASCII digits; callers pass only digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

var monthByPrefix = map[string]int{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

// genderBySynonym holds the letters-only, lowercase spellings mapped to Meta's f/m [C-pb
// genderUtil.js, C-node]. Keys are what appendFiltered produces.
var genderBySynonym = map[string]byte{
	"f": 'f', "female": 'f', "woman": 'f', "women": 'f', "girl": 'f', "mrs": 'f', "ms": 'f',
	"miss": 'f', "lady": 'f', "feminine": 'f', "fem": 'f', "w": 'f', "femme": 'f', "frau": 'f',
	"mujer": 'f', "femenino": 'f', "feminino": 'f', "donna": 'f', "weiblich": 'f',
	"m": 'm', "male": 'm', "man": 'm', "men": 'm', "boy": 'm', "mr": 'm', "sir": 'm',
	"masculine": 'm', "homme": 'm', "mann": 'm', "hombre": 'm', "masculino": 'm', "uomo": 'm',
	"männlich": 'm', "mannlich": 'm',
}

// stateByName maps US state and territory and Canadian province and territory names (letters
// only, lowercase) to their 2-letter postal code [D-cust; C-pb maps the same lists].
var stateByName = map[string]string{
	"alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
	"colorado": "co", "connecticut": "ct", "delaware": "de", "florida": "fl", "georgia": "ga",
	"hawaii": "hi", "idaho": "id", "illinois": "il", "indiana": "in", "iowa": "ia",
	"kansas": "ks", "kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md",
	"massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms",
	"missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv", "newhampshire": "nh",
	"newjersey": "nj", "newmexico": "nm", "newyork": "ny", "northcarolina": "nc",
	"northdakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
	"rhodeisland": "ri", "southcarolina": "sc", "southdakota": "sd", "tennessee": "tn",
	"texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
	"westvirginia": "wv", "wisconsin": "wi", "wyoming": "wy",
	"districtofcolumbia": "dc", "washingtondc": "dc", "puertorico": "pr", "guam": "gu",
	"americansamoa": "as", "northernmarianaislands": "mp", "usvirginislands": "vi",
	"unitedstatesvirginislands": "vi",
	"alberta":                   "ab", "britishcolumbia": "bc", "manitoba": "mb", "newbrunswick": "nb",
	"newfoundlandandlabrador": "nl", "newfoundland": "nl", "novascotia": "ns",
	"northwestterritories": "nt", "nunavut": "nu", "ontario": "on", "princeedwardisland": "pe",
	"quebec": "qc", "québec": "qc", "saskatchewan": "sk", "yukon": "yt",
}
