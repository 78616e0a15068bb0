package emulator

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode"
)

// The checks below read the wire JSON directly (maps of json.RawMessage), not the sink's Go
// types, so they see exactly what Meta would: a field the client's types forget to encode, a
// number sent as a string or milliseconds sent as seconds all show up here.

// actionSources is Meta's allowed set [D-srv; C-py action_source.py].
var actionSources = map[string]bool{
	"email": true, "website": true, "app": true, "phone_call": true, "chat": true,
	"physical_store": true, "system_generated": true, "business_messaging": true, "other": true,
}

// hashedKeys must carry SHA-256 digests [D-cust].
var hashedKeys = []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"}

// customerKeys are every customer information parameter [D-cust]; at least one is required.
var customerKeys = []string{
	"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id",
	"client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id",
	"lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid",
	"ig_account_id", "ig_sid", "whatsapp_business_account_id",
}

// insufficientSets: customer information made only of one of these sets (or a subset) is
// rejected since v13 [D-bp].
var insufficientSets = []map[string]bool{
	{"ct": true, "country": true, "st": true, "zp": true, "ge": true, "client_user_agent": true},
	{"db": true, "client_user_agent": true},
	{"fn": true, "ge": true},
	{"ln": true, "ge": true},
}

// lduStates are the data_processing_options_state codes Meta defines [D-ldu].
func validLDUState(v int64) bool { return v == 0 || v >= 1000 && v <= 1013 }

// acceptedEvent is what the emulator records about a valid event.
type acceptedEvent struct{ name, id string }

func validateEvent(i int, raw json.RawMessage, now time.Time, futureSkew time.Duration) (acceptedEvent, *graphError) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil || ev == nil {
		return acceptedEvent{}, eventError(i, SubcodeNotAnEvent, "Invalid Event", "Each element of data must be a JSON object.")
	}
	name, ok := str(ev["event_name"])
	if !ok || name == "" {
		return acceptedEvent{}, eventError(i, SubcodeMissingName, "Missing Event Name", "The parameter event_name is required.")
	}
	ts, ok := integer(ev["event_time"])
	if !ok {
		return acceptedEvent{}, eventError(i, SubcodeInvalidTime, "Invalid Event Time",
			"The parameter event_time is required and must be a Unix timestamp in seconds.")
	}
	t := time.Unix(ts, 0)
	if now.Sub(t) > maxAge {
		return acceptedEvent{}, eventError(i, SubcodeEventTooOld, "Event Timestamp Too Old",
			"The timestamp for this event is too far in the past. Events need to be sent from your server within 7 days of when they occurred. Enter a timestamp that has occurred within the last 7 days.")
	}
	if t.Sub(now) > futureSkew {
		return acceptedEvent{}, eventError(i, SubcodeEventInFuture, "Event Timestamp In The Future",
			"The timestamp for this event is in the future. Enter a timestamp that has already occurred, in seconds.")
	}
	source, isString := str(ev["action_source"])
	switch {
	case isAbsent(ev["action_source"]) || isString && source == "":
		return acceptedEvent{}, eventError(i, SubcodeMissingSource, "Missing Action Source", "The parameter action_source is required for all events.")
	case !actionSources[source]:
		return acceptedEvent{}, eventError(i, SubcodeInvalidSource, "Invalid Action Source",
			"The parameter action_source must be one of email, website, app, phone_call, chat, physical_store, system_generated, business_messaging, other.")
	}

	var user map[string]json.RawMessage
	if rawUser, ok := ev["user_data"]; !ok || json.Unmarshal(rawUser, &user) != nil || user == nil {
		return acceptedEvent{}, eventError(i, SubcodeNoUserData, "Missing User Data", "The parameter user_data is required and must be an object.")
	}
	switch source {
	case "website": // [D-params, D-bp]
		if u, _ := str(ev["event_source_url"]); u == "" {
			return acceptedEvent{}, eventError(i, SubcodeWebsiteURL, "Missing Event Source URL", "Website events require the parameter event_source_url.")
		}
		if ua, _ := str(user["client_user_agent"]); ua == "" {
			return acceptedEvent{}, eventError(i, SubcodeWebsiteUA, "Missing Client User Agent", "Website events require the user_data parameter client_user_agent.")
		}
	case "app": // [D-srv]
		var appData map[string]json.RawMessage
		if json.Unmarshal(ev["app_data"], &appData) != nil || appData == nil {
			return acceptedEvent{}, eventError(i, SubcodeAppData, "Missing App Data", "App events require the parameter app_data.")
		}
	}
	if gerr := checkUserData(i, user); gerr != nil {
		return acceptedEvent{}, gerr
	}
	if gerr := checkCustomData(i, name, ev["custom_data"]); gerr != nil {
		return acceptedEvent{}, gerr
	}
	if gerr := checkDPO(i, ev); gerr != nil {
		return acceptedEvent{}, gerr
	}
	id, ok := str(ev["event_id"])
	if !ok && !isAbsent(ev["event_id"]) {
		id = string(bytes.TrimSpace(ev["event_id"]))
	}
	return acceptedEvent{name: name, id: id}, nil
}

func checkUserData(i int, user map[string]json.RawMessage) *graphError {
	for _, key := range hashedKeys {
		vals, ok := stringList(user[key])
		if !ok {
			return eventError(i, SubcodeInvalidUserData, "Invalid User Data",
				"The user_data parameter "+key+" must be a string or an array of strings.")
		}
		for _, v := range vals {
			if !wireHash(v) {
				// Meta rejects unhashed contact information [D-cust]. The value is not
				// echoed: error bodies end up in logs.
				return eventError(i, SubcodeUnhashed, "Unhashed Customer Information",
					"The user_data parameter "+key+" must be hashed with SHA-256 and sent as lowercase hex.")
			}
		}
	}
	if raw, ok := user["lead_id"]; ok && !isAbsent(raw) {
		if !leadID(raw) { // [D-crm]
			return eventError(i, SubcodeInvalidLeadID, "Invalid Lead ID", "The user_data parameter lead_id must be the 15 to 17 digit Lead Ads ID.")
		}
	}
	present := map[string]bool{}
	for _, key := range customerKeys {
		if hasValue(user[key]) {
			present[key] = true
		}
	}
	if len(present) == 0 {
		return eventError(i, SubcodeNoUserData, "No Customer Information",
			"The parameter user_data must contain at least one customer information parameter.")
	}
	for _, set := range insufficientSets {
		subset := true
		for k := range present {
			if !set[k] {
				subset = false
				break
			}
		}
		if subset {
			return eventError(i, SubcodeInsufficient, "Insufficient Customer Information",
				"The customer information parameters in user_data are not enough to match this event. Add another parameter such as em, ph, external_id, client_ip_address, fbc or fbp.")
		}
	}
	return nil
}

func checkCustomData(i int, name string, raw json.RawMessage) *graphError {
	var custom map[string]json.RawMessage
	if !isAbsent(raw) {
		if json.Unmarshal(raw, &custom) != nil {
			return eventError(i, SubcodeInvalidCustom, "Invalid Custom Data", "The parameter custom_data must be an object.")
		}
	}
	currency, hasCurrency := str(custom["currency"])
	if hasCurrency && !isCurrency(currency) {
		return eventError(i, SubcodeInvalidCustom, "Invalid Currency", "The custom_data parameter currency must be a three-letter ISO 4217 code.")
	}
	_, hasValue := number(custom["value"])
	if raw, ok := custom["value"]; ok && !isAbsent(raw) && !hasValue {
		return eventError(i, SubcodeInvalidCustom, "Invalid Value", "The custom_data parameter value must be a number.")
	}
	if name == "Purchase" && (!hasCurrency || !hasValue) { // [D-std]
		return eventError(i, SubcodePurchase, "Missing Currency or Value",
			"Purchase events require the custom_data parameters currency and value.")
	}
	return nil
}

func checkDPO(i int, ev map[string]json.RawMessage) *graphError {
	raw, ok := ev["data_processing_options"]
	if !ok || isAbsent(raw) {
		return nil
	}
	var opts []string
	if json.Unmarshal(raw, &opts) != nil {
		return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options", "The parameter data_processing_options must be an array of strings.")
	}
	ldu := false
	for _, o := range opts {
		if o != "LDU" { // [D-ldu]
			return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options", `The only accepted data_processing_options value is "LDU".`)
		}
		ldu = true
	}
	if !ldu {
		return nil
	}
	country, ok := integer(ev["data_processing_options_country"])
	if !ok || (country != 0 && country != 1) {
		return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options",
			"With LDU, data_processing_options_country is required: 1 for the USA or 0 to geolocate.")
	}
	if rawState, ok := ev["data_processing_options_state"]; ok && !isAbsent(rawState) {
		if state, ok := integer(rawState); !ok || !validLDUState(state) {
			return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options",
				"data_processing_options_state must be 0 or a state code from 1000 to 1013.")
		}
	}
	return nil
}

// isAbsent reports a missing or null field.
func isAbsent(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

func str(raw json.RawMessage) (string, bool) {
	if isAbsent(raw) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// stringList reads a "string or list<string>" field [D-cust]; absent is an empty list.
func stringList(raw json.RawMessage) ([]string, bool) {
	if isAbsent(raw) {
		return nil, true
	}
	if s, ok := str(raw); ok {
		return []string{s}, true
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return nil, false
	}
	return list, true
}

// integer accepts a JSON integer literal only: "1.7e9", 1.5 and "1700000000" are refused, so
// a client that sends anything but whole seconds finds out here.
func integer(raw json.RawMessage) (int64, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return 0, false
	}
	digits := t
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(t), 10, 64)
	return v, err == nil
}

// number accepts a JSON number or a numeric string, as Meta's own samples send value as a
// string [D-plat].
func number(raw json.RawMessage) (float64, bool) {
	if isAbsent(raw) {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		f, err := n.Float64()
		return f, err == nil
	}
	if s, ok := str(raw); ok {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	return 0, false
}

func hasValue(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	switch {
	case isAbsent(t):
		return false
	case bytes.Equal(t, []byte(`""`)), bytes.Equal(t, []byte(`[]`)):
		return false
	}
	return true
}

func leadID(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if s, ok := str(t); ok {
		t = []byte(s)
	}
	if len(t) < 15 || len(t) > 17 {
		return false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// wireHash accepts a lowercase hex SHA-256 digest, a lowercase 32-hex MD5 digest (the SDKs
// pass those through [C-py, C-node]) and the parameter builder's "<hex>.<appendix>" [C-pb].
func wireHash(v string) bool {
	lowerHex := func(s string) bool {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	switch {
	case len(v) == 64 || len(v) == 32:
		return lowerHex(v)
	case len(v) == 67 || len(v) == 73:
		if v[64] != '.' || !lowerHex(v[:64]) {
			return false
		}
		for _, r := range v[65:] {
			if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_')) {
				return false
			}
		}
		return true
	}
	return false
}

// isCurrency accepts three ASCII letters in either case; the docs show USD and usd [D-std].
func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func validPartnerAgent(s string) bool {
	n, letters := 0, 0
	for _, r := range s {
		n++
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return n < 23 && letters >= 2 // [D-e2e]
}
