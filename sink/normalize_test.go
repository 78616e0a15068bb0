package sink

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// Meta's documented test vectors [D-cust], full digests computed with sha256sum.
const (
	digestEmail   = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" // john_smith@gmail.com
	digestPhone   = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176" // 16505551212
	digestMary    = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec" // mary
	digestValery  = "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c" // valéry (NFC)
	digestDOB     = "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c" // 19970216
	digestUS      = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621" // us
	digestF       = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111" // f
	digestM       = "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a" // m
	digestSmith   = "6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd" // smith
	digestNewYork = "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5" // newyork
	digestCA      = "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126" // ca
	digestZip     = "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e" // 94035
	digestUKZip   = "1dc694c2070e697769fb959b50671d76cafd430d8ca191fbdd0affcaea344ac5" // m11ae
)

func TestMetaTestVectors(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		norm   func(string) (string, error)
		raw    string
		want   string
		digest string
	}{
		{"email", NormalizeEmail, "John_Smith@gmail.com", "john_smith@gmail.com", digestEmail},
		{"email spaces", NormalizeEmail, "  John_Smith@Gmail.COM \n", "john_smith@gmail.com", digestEmail},
		{"phone", NormalizePhone, "(650)555-1212", "6505551212", ""},
		{"phone with country code", NormalizePhone, "+1 (650) 555-1212", "16505551212", digestPhone},
		{"phone 00 prefix", NormalizePhone, "001 650 555 1212", "16505551212", digestPhone},
		{"first name", NormalizeFirstName, "Mary", "mary", digestMary},
		{"first name accent", NormalizeFirstName, "Valéry", "valéry", digestValery},
		{"first name decomposed", NormalizeFirstName, "Vale\u0301ry", "valéry", digestValery},
		{"last name", NormalizeLastName, " Smith ", "smith", digestSmith},
		{"dob us", func(s string) (string, error) { return NormalizeDateOfBirth(s, now) }, "2/16/1997", "19970216", digestDOB},
		{"country name", NormalizeCountry, "United States", "us", digestUS},
		{"gender female", NormalizeGender, "Female", "f", digestF},
		{"gender male", NormalizeGender, "M", "m", digestM},
		{"city", NormalizeCity, "New York", "newyork", digestNewYork},
		{"state name", NormalizeState, "California", "ca", digestCA},
		{"zip plus4", func(s string) (string, error) { return NormalizeZip(s, "") }, "94035-1234", "94035", digestZip},
		{"uk zip", func(s string) (string, error) { return NormalizeZip(s, "gb") }, "M1 1AE", "m11ae", digestUKZip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.norm(tt.raw)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if got != tt.want {
				t.Fatalf("normalized = %q, want %q", got, tt.want)
			}
			if tt.digest != "" {
				if h := HashString(got); h != tt.digest {
					t.Fatalf("hash = %s, want %s", h, tt.digest)
				}
			}
		})
	}
}

func TestNormalizeFields(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dob := func(s string) (string, error) { return NormalizeDateOfBirth(s, now) }
	zipUS := func(s string) (string, error) { return NormalizeZip(s, "us") }
	zipAny := func(s string) (string, error) { return NormalizeZip(s, "") }
	tests := []struct {
		name   string
		norm   func(string) (string, error)
		raw    string
		want   string
		reason string // expected drop reason when want is ""
	}{
		{"email no at", NormalizeEmail, "john.example.com", "", DropInvalidEmail},
		{"email two ats", NormalizeEmail, "a@b@example.com", "", DropInvalidEmail},
		{"email no dot", NormalizeEmail, "john@localhost", "", DropInvalidEmail},
		{"email inner space", NormalizeEmail, "jo hn@example.com", "", DropInvalidEmail},
		{"email empty local", NormalizeEmail, "@example.com", "", DropInvalidEmail},
		{"email double dot", NormalizeEmail, "a@example..com", "", DropInvalidEmail},
		{"email short tld", NormalizeEmail, "a@example.c", "", DropInvalidEmail},
		{"email unicode", NormalizeEmail, "Jörg@Example.DE", "jörg@example.de", ""},

		{"phone too short", NormalizePhone, "555-12", "", DropInvalidPhone},
		{"phone too long", NormalizePhone, "+1 650 555 1212 1234 5678", "", DropInvalidPhone},
		{"phone letters removed", NormalizePhone, "tel: +44 20 7946 0958", "442079460958", ""},
		{"phone trunk zero", NormalizePhone, "+44 (0)20 7946 0958", "442079460958", ""},
		{"phone only zeros", NormalizePhone, "0000000000", "", DropInvalidPhone},

		{"name punctuation", NormalizeFirstName, "Mary-Jane O'Neil.", "maryjaneoneil", ""},
		{"name non-latin", NormalizeFirstName, "Дмитрий", "дмитрий", ""},
		{"name cjk", NormalizeLastName, " 山田 ", "山田", ""},
		{"name devanagari marks", NormalizeFirstName, "अनिल", "अनिल", ""},
		{"name no letters", NormalizeFirstName, "--- 123", "", DropInvalidName},

		{"city digits", NormalizeCity, "Paris 75001", "paris", ""},
		{"city punctuation", NormalizeCity, "St. Louis", "stlouis", ""},
		{"city greek", NormalizeCity, "Αθήνα", "αθήνα", ""},
		{"city empty", NormalizeCity, "12345", "", DropInvalidCity},

		{"state code", NormalizeState, "CA", "ca", ""},
		{"state two words", NormalizeState, "New York", "ny", ""},
		{"state dc", NormalizeState, "District of Columbia", "dc", ""},
		{"province", NormalizeState, "Québec", "qc", ""},
		{"province ascii", NormalizeState, "british columbia", "bc", ""},
		{"state other country", NormalizeState, "Île-de-France", "îledefrance", ""},
		{"state none", NormalizeState, "--", "", DropInvalidState},

		{"zip us 9 digits", zipUS, "940351234", "94035", ""},
		{"zip us spaced plus4", zipUS, "94035 1234", "94035", ""},
		{"zip us lost leading zero", zipUS, "2134", "", DropInvalidZip},
		{"zip us letters", zipUS, "M1 1AE", "", DropInvalidZip},
		{"zip generic", zipAny, "SW1A 1AA", "sw1a1aa", ""},
		{"zip too short", zipAny, "1", "", DropInvalidZip},
		{"zip junk", zipAny, "12 rue #4", "", DropInvalidZip},

		{"country code", NormalizeCountry, "US", "us", ""},
		{"country alpha3", NormalizeCountry, "DEU", "de", ""},
		{"country usa", NormalizeCountry, "U.S.A.", "us", ""},
		{"country uk", NormalizeCountry, "UK", "gb", ""},
		{"country official", NormalizeCountry, "United Kingdom of Great Britain and Northern Ireland", "gb", ""},
		{"country swapped", NormalizeCountry, "Republic of Korea", "kr", ""},
		{"country accent folded", NormalizeCountry, "Cote d'Ivoire", "ci", ""},
		{"country native", NormalizeCountry, "Deutschland", "de", ""},
		{"country unknown", NormalizeCountry, "Atlantis", "", DropUnknownCountry},
		{"country bad code", NormalizeCountry, "XX", "", DropUnknownCountry},

		{"gender woman", NormalizeGender, "Woman", "f", ""},
		{"gender mrs", NormalizeGender, "Mrs.", "f", ""},
		{"gender male", NormalizeGender, " MALE ", "m", ""},
		{"gender other", NormalizeGender, "nonbinary", "", DropUnknownGender},

		{"dob iso", dob, "1997-02-16", "19970216", ""},
		{"dob compact", dob, "19970216", "19970216", ""},
		{"dob us slash", dob, "02/16/1997", "19970216", ""},
		{"dob eu dot", dob, "16.02.1997", "19970216", ""},
		{"dob eu dot ambiguous", dob, "03.04.1997", "19970403", ""},
		{"dob us slash ambiguous", dob, "03/04/1997", "19970304", ""},
		{"dob eu dash day first", dob, "16-02-1997", "19970216", ""},
		{"dob year slash", dob, "1997/2/16", "19970216", ""},
		{"dob rfc3339", dob, "1997-02-16T00:00:00Z", "19970216", ""},
		{"dob with time", dob, "1997-02-16 10:30", "19970216", ""},
		{"dob month name", dob, "16 Feb 1997", "19970216", ""},
		{"dob month name first", dob, "February 16, 1997", "19970216", ""},
		{"dob impossible date", dob, "1997-02-30", "", DropInvalidDateOfBirth},
		{"dob bad month", dob, "1997-13-01", "", DropInvalidDateOfBirth},
		{"dob two digit year", dob, "02/16/97", "", DropInvalidDateOfBirth},
		{"dob garbage", dob, "yesterday", "", DropInvalidDateOfBirth},
		{"dob before 1900", dob, "1899-12-31", "", DropDateOutOfRange},
		{"dob future year", dob, "2027-01-01", "", DropDateOutOfRange},
		{"dob later this year", dob, "2026-06-01", "", DropDateOutOfRange},
		{"dob leap day", dob, "2000-02-29", "20000229", ""},

		{"external id", NormalizeExternalID, "  User 42\tABC ", "user42abc", ""},
		{"external id unicode lower", NormalizeExternalID, "ÄBC-1", "äbc-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.norm(tt.raw)
			if tt.reason != "" {
				var ne *NormalizeError
				if !errors.As(err, &ne) {
					t.Fatalf("got %q, %v; want NormalizeError %s", got, err, tt.reason)
				}
				if ne.Reason != tt.reason {
					t.Fatalf("reason = %s, want %s", ne.Reason, tt.reason)
				}
				if strings.Contains(err.Error(), tt.raw) {
					t.Fatalf("error %q contains the raw value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAlreadyHashedPassThrough(t *testing.T) {
	upper := strings.ToUpper(digestEmail)
	md5 := "5D41402ABC4B2A76B9719D911017C592"
	pb := digestEmail + ".AQYCAQAA"
	pbLang := digestPhone + ".Ag"
	funcs := map[string]func(string) (string, error){
		"em": NormalizeEmail, "ph": NormalizePhone, "fn": NormalizeFirstName,
		"ct": NormalizeCity, "country": NormalizeCountry, "ge": NormalizeGender,
		"external_id": NormalizeExternalID,
		"zp":          func(s string) (string, error) { return NormalizeZip(s, "us") },
		"db":          func(s string) (string, error) { return NormalizeDateOfBirth(s, time.Now()) },
	}
	cases := []struct{ in, want string }{
		{digestEmail, digestEmail},
		{upper, digestEmail},
		{" " + upper + " ", digestEmail},
		{md5, strings.ToLower(md5)},
		{pb, pb},
		{pbLang, pbLang},
	}
	for field, f := range funcs {
		for _, c := range cases {
			got, err := f(c.in)
			if err != nil || got != c.want {
				t.Errorf("%s(%q) = %q, %v; want %q", field, c.in, got, err, c.want)
			}
		}
	}
	// Not hashes: wrong length, non-hex, bad param-builder suffix.
	for _, s := range []string{digestEmail[:63], digestEmail + "0", "g" + digestEmail[1:], digestEmail + ".A", digestEmail + ".AQ!CAQAA", strings.ToUpper(digestEmail) + ".AQYCAQAA"} {
		if classifyHashed(s) != notHashed {
			t.Errorf("classifyHashed(%q) = hashed, want not", s)
		}
	}
}

func TestNormalizeCurrency(t *testing.T) {
	for in, want := range map[string]string{"usd": "USD", " EUR ": "EUR", "Jpy": "JPY"} {
		if got, err := NormalizeCurrency(in); err != nil || got != want {
			t.Errorf("NormalizeCurrency(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "US", "DOLLARS", "XYZ", "$"} {
		if _, err := NormalizeCurrency(in); err == nil {
			t.Errorf("NormalizeCurrency(%q) succeeded, want error", in)
		}
	}
}

func TestIsWireHash(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{digestEmail, true},
		{strings.ToUpper(digestEmail), false}, // the wire form is lowercase
		{"5d41402abc4b2a76b9719d911017c592", true},
		{digestEmail + ".AQYCAQAA", true},
		{strings.ToUpper(digestEmail) + ".AQYCAQAA", false},
		{"john_smith@gmail.com", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsWireHash(tt.v); got != tt.want {
			t.Errorf("IsWireHash(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestHexChecksEveryByte puts each of the 256 byte values into a valid digest, first and
// last, and checks the table-driven checks against the plain definition.
func TestHexChecksEveryByte(t *testing.T) {
	const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	lower := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	anyCase := func(c byte) bool { return lower(c) || 'A' <= c && c <= 'F' }
	for c := 0; c < 256; c++ {
		for _, at := range []int{0, len(digest) - 1} {
			b := []byte(digest)
			b[at] = byte(c)
			v := string(b)
			if got, want := isLowerHex(v), lower(byte(c)); got != want {
				t.Errorf("isLowerHex with byte %#x at %d = %v, want %v", c, at, got, want)
			}
			if got, want := isHex(v), anyCase(byte(c)); got != want {
				t.Errorf("isHex with byte %#x at %d = %v, want %v", c, at, got, want)
			}
		}
	}
	if isLowerHex("") || isHex("") {
		t.Error("the empty string counts as hex")
	}
	if isLowerHex("ABCDEF") || !isHex("ABCDEF") {
		t.Error("uppercase digits: isLowerHex must refuse them, isHex accept them")
	}
}

// TestEmailEveryByte: the ASCII table judges each byte, at the start, in the local part and
// in the domain, exactly as the rune-by-rune reference below (the code before the table)
// does, and non-ASCII addresses still take the rune path.
func TestEmailEveryByte(t *testing.T) {
	reference := func(s string) (string, string) {
		var dst []byte
		at := -1
		for _, r := range s {
			switch {
			case r == '@':
				if at >= 0 {
					return "", DropInvalidEmail
				}
				at = len(dst)
			case unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError ||
				strings.ContainsRune(`,;:<>()[]\"`, r):
				return "", DropInvalidEmail
			}
			dst = appendLowerRune(dst, r)
		}
		if !emailShapeOK(dst, at) {
			return "", DropInvalidEmail
		}
		return string(dst), ""
	}
	inputs := []string{"Jörg@Example.DE", "jo\u2028hn@example.com", "A@B.CO", "x\xffy@example.com", "ÉLODIE@ÉCOLE.FR"}
	for c := range 256 {
		for _, pattern := range []string{"%cjohn@example.com", "jo%chn@example.com", "john@exa%cmple.com", "john@example.co%c"} {
			inputs = append(inputs, strings.Replace(pattern, "%c", string([]byte{byte(c)}), 1))
		}
	}
	for _, in := range inputs {
		got, _, reason := appendEmail(nil, nil, in, nil)
		wantOut, wantReason := reference(in)
		if string(got) != wantOut || reason != wantReason {
			t.Errorf("appendEmail(%q) = %q, %q; the rune path gives %q, %q", in, got, reason, wantOut, wantReason)
		}
	}
}

// TestFilteredASCIIEveryByte: appendFiltered's ASCII path keeps, lowercases and counts
// letters exactly as the general path does, for every ASCII byte at each end and inside.
func TestFilteredASCIIEveryByte(t *testing.T) {
	filters := map[string]letterFilter{"keepName": keepName, "keepLetters": keepLetters}
	for name, keep := range filters {
		for c := range utf8.RuneSelf {
			for _, pattern := range []string{"%c", "%cMary", "Ma%cry", "Mary%c", "%c%c", "1%c2"} {
				in := strings.ReplaceAll(pattern, "%c", string(rune(c)))
				got, _, gotLetter := appendFiltered(nil, nil, in, keep)
				want, _, wantLetter := appendFilteredUnicode(nil, nil, in, keep)
				if string(got) != string(want) || gotLetter != wantLetter {
					t.Errorf("%s(%q) = %q, %v; the general path gives %q, %v", name, in, got, gotLetter, want, wantLetter)
				}
			}
		}
	}
}

// BenchmarkNormalizeEmail normalizes 1,024 different ASCII addresses in turn, as Build
// meets them (already trimmed).
func BenchmarkNormalizeEmail(b *testing.B) {
	in := make([]string, 1024)
	for i := range in {
		in[i] = "Customer." + strconv.Itoa(i*7919) + "@Example.com"
	}
	var dst []byte
	i := 0
	for b.Loop() {
		var reason string
		if dst, _, reason = appendEmail(dst[:0], nil, in[i%len(in)], nil); reason != "" {
			b.Fatal(reason)
		}
		i++
	}
}

// BenchmarkIsLowerHex checks 1,024 different digests in turn, as Validate meets them: with
// a single fixed value the branch predictor learns its digits and hides what per-digit
// branches cost on real data.
func BenchmarkIsLowerHex(b *testing.B) {
	digests := make([]string, 1024)
	for i := range digests {
		digests[i] = HashString(strconv.Itoa(i))
	}
	var ok bool
	i := 0
	for b.Loop() {
		ok = isLowerHex(digests[i&1023])
		i++
	}
	if !ok {
		b.Fatal("a digest is not lowercase hex")
	}
}
