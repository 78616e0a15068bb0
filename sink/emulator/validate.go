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

// Subcodes for the rules added with the full event model. Like the others in errors.go
// they are the emulator's own (28049xx), not Meta's.
const (
	SubcodeInvalidAppData      = 2804916
	SubcodeMessagingChannel    = 2804917
	SubcodeMessagingIDs        = 2804918
	SubcodeSegmentation        = 2804919
	SubcodeOriginalEvent       = 2804926
	SubcodeDeliveryCategory    = 2804927
	SubcodeInvalidFBLoginID    = 2804928
	extInfoSlots               = 16
	originalEventTimeMaxSecond = 1e11 // later than this is milliseconds, not seconds
)

// messagingChannels [D-bm], customerSegments [D-srv] and deliveryCategories [D-std] are
// Meta's enumerations.
var (
	messagingChannels = map[string]bool{"whatsapp": true, "messenger": true, "instagram": true}
	customerSegments  = map[string]bool{
		"new_customer_to_business": true, "new_customer_to_business_line": true,
		"new_customer_to_product_area": true, "new_customer_to_medium": true,
		"existing_customer_to_business": true, "existing_customer_to_business_line": true,
		"existing_customer_to_product_area": true, "existing_customer_to_medium": true,
		"customer_in_loyalty_program": true,
	}
	deliveryCategories = map[string]bool{"in_store": true, "curbside": true, "home_delivery": true}
)

// hashedKeys must carry SHA-256 digests [D-cust].
var hashedKeys = []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"}

// customerKeys are every customer information parameter [D-cust]; at least one is required.
var customerKeys = []string{
	"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id",
	"client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id",
	"lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid",
	"ig_account_id", "ig_sid", "whatsapp_business_account_id",
	// Meta's own Instagram messaging example names the account this way [D-bm].
	"instagram_business_account_id",
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
		// [D-params] advertiser_tracking_enabled and extinfo are required for app events.
		if isAbsent(appData["advertiser_tracking_enabled"]) {
			return acceptedEvent{}, eventError(i, SubcodeInvalidAppData, "Invalid App Data",
				"App events require the app_data parameter advertiser_tracking_enabled.")
		}
		if isAbsent(appData["extinfo"]) {
			return acceptedEvent{}, eventError(i, SubcodeInvalidAppData, "Invalid App Data",
				"App events require the app_data parameter extinfo.")
		}
	case "business_messaging": // [D-bm]
		if isAbsent(ev["messaging_channel"]) {
			return acceptedEvent{}, eventError(i, SubcodeMessagingChannel, "Missing Messaging Channel",
				"Business messaging events require the parameter messaging_channel.")
		}
	}
	if gerr := checkEventParams(i, source, ev, user); gerr != nil {
		return acceptedEvent{}, gerr
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

// checkEventParams checks the optional server event parameters present on any event.
func checkEventParams(i int, source string, ev, user map[string]json.RawMessage) *graphError {
	if raw := ev["messaging_channel"]; !isAbsent(raw) {
		ch, _ := str(raw)
		if !messagingChannels[ch] {
			return eventError(i, SubcodeMessagingChannel, "Invalid Messaging Channel",
				"The parameter messaging_channel must be whatsapp, messenger or instagram.")
		}
		if source == "business_messaging" {
			// [D-bm] the identifiers each channel's integration sends.
			var need []string
			switch ch {
			case "messenger":
				need = []string{"page_id", "page_scoped_user_id"}
			case "whatsapp":
				need = []string{"whatsapp_business_account_id", "ctwa_clid"}
			case "instagram":
				need = []string{"ig_sid"}
			}
			for _, k := range need {
				if !hasValue(user[k]) {
					return eventError(i, SubcodeMessagingIDs, "Missing Messaging Identifier",
						"Business messaging events on "+ch+" require the user_data parameter "+k+".")
				}
			}
		}
	}
	if raw := ev["customer_segmentation"]; !isAbsent(raw) {
		if seg, _ := str(raw); !customerSegments[seg] {
			return eventError(i, SubcodeSegmentation, "Invalid Customer Segmentation",
				"The parameter customer_segmentation must be one of Meta's customer segmentation values.")
		}
	}
	if raw := ev["app_data"]; !isAbsent(raw) {
		var app map[string]json.RawMessage
		if json.Unmarshal(raw, &app) != nil || app == nil {
			return eventError(i, SubcodeInvalidAppData, "Invalid App Data", "The parameter app_data must be an object.")
		}
		for _, k := range []string{"advertiser_tracking_enabled", "application_tracking_enabled"} {
			if r := app[k]; !isAbsent(r) && !flag(r) {
				return eventError(i, SubcodeInvalidAppData, "Invalid App Data",
					"The app_data parameter "+k+" must be a boolean (or 0/1).")
			}
		}
		if r := app["extinfo"]; !isAbsent(r) {
			var ext []string
			switch {
			case json.Unmarshal(r, &ext) != nil || len(ext) != extInfoSlots:
				return eventError(i, SubcodeInvalidAppData, "Invalid App Data",
					"The app_data parameter extinfo must be an array of 16 strings, with empty strings for missing values.")
			case ext[0] != "a2" && ext[0] != "i2":
				return eventError(i, SubcodeInvalidAppData, "Invalid App Data",
					"The extinfo version (index 0) must be a2 for Android or i2 for iOS.")
			case ext[4] == "":
				return eventError(i, SubcodeInvalidAppData, "Invalid App Data",
					"The extinfo OS version (index 4) is required.")
			}
		}
	}
	if raw := ev["original_event_data"]; !isAbsent(raw) { // [D-oed]
		var o map[string]json.RawMessage
		if json.Unmarshal(raw, &o) != nil || len(o) == 0 {
			return eventError(i, SubcodeOriginalEvent, "Invalid Original Event Data",
				"The parameter original_event_data must be a non-empty object.")
		}
		if r := o["event_time"]; !isAbsent(r) {
			if ts, ok := integer(r); !ok || ts < 0 || ts >= originalEventTimeMaxSecond {
				return eventError(i, SubcodeOriginalEvent, "Invalid Original Event Data",
					"The original_event_data parameter event_time must be a Unix timestamp in seconds.")
			}
		}
	}
	return nil
}

// flag accepts a JSON boolean or 0/1, as Meta's app_data docs describe the flags both ways
// [D-params].
func flag(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "true", "false", "0", "1":
		return true
	}
	return false
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
	if raw, ok := user["fb_login_id"]; ok && !isAbsent(raw) {
		if !digits(raw) { // an integer [D-cust]
			return eventError(i, SubcodeInvalidFBLoginID, "Invalid Facebook Login ID",
				"The user_data parameter fb_login_id must be an integer.")
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
	for _, k := range []string{"predicted_ltv", "net_revenue"} {
		if raw, ok := custom[k]; ok && !isAbsent(raw) {
			if _, ok := number(raw); !ok {
				return eventError(i, SubcodeInvalidCustom, "Invalid Custom Data", "The custom_data parameter "+k+" must be a number.")
			}
		}
	}
	if raw := custom["delivery_category"]; !isAbsent(raw) {
		if d, _ := str(raw); !deliveryCategories[d] { // [D-std]
			return eventError(i, SubcodeDeliveryCategory, "Invalid Delivery Category",
				"The custom_data parameter delivery_category must be in_store, curbside or home_delivery.")
		}
	}
	if raw := custom["contents"]; !isAbsent(raw) {
		var contents []map[string]json.RawMessage
		if json.Unmarshal(raw, &contents) != nil {
			return eventError(i, SubcodeInvalidCustom, "Invalid Custom Data", "The custom_data parameter contents must be an array of objects.")
		}
		for _, c := range contents {
			if r := c["delivery_category"]; !isAbsent(r) {
				if d, _ := str(r); !deliveryCategories[d] {
					return eventError(i, SubcodeDeliveryCategory, "Invalid Delivery Category",
						"A contents delivery_category must be in_store, curbside or home_delivery.")
				}
			}
		}
	}
	// Meta's only JSON example puts customer_segmentation here [D-srv].
	if raw := custom["customer_segmentation"]; !isAbsent(raw) {
		if seg, _ := str(raw); !customerSegments[seg] {
			return eventError(i, SubcodeSegmentation, "Invalid Customer Segmentation",
				"The custom_data parameter customer_segmentation must be one of Meta's customer segmentation values.")
		}
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
	rawState, ok := ev["data_processing_options_state"]
	if !ok || isAbsent(rawState) {
		// Without an IP there is nothing to geolocate the state from [D-srv].
		if ip, _ := str(userObject(ev)["client_ip_address"]); ip == "" {
			return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options",
				"With LDU and no client_ip_address, data_processing_options_state is required (0 to geolocate).")
		}
		return nil
	}
	state, ok := integer(rawState)
	if !ok || !validLDUState(state) {
		return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options",
			"data_processing_options_state must be 0 or a state code from 1000 to 1013.")
	}
	if state != 0 && country != 1 { // the codes are US states [D-ldu]
		return eventError(i, SubcodeInvalidDPO, "Invalid Data Processing Options",
			"A data_processing_options_state code needs data_processing_options_country 1.")
	}
	return nil
}

// userObject returns the user_data object of an event, nil when it is not one.
func userObject(ev map[string]json.RawMessage) map[string]json.RawMessage {
	var u map[string]json.RawMessage
	_ = json.Unmarshal(ev["user_data"], &u)
	return u
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

// digits accepts a JSON integer literal or a string of digits.
func digits(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if s, ok := str(t); ok {
		t = []byte(s)
	}
	if len(t) == 0 || len(t) > 20 {
		return false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
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

// notLowerHex is 1 for every byte that is not a lowercase hex digit: ORing it over a
// digest and testing once avoids the branch mispredictions of range tests on random digits.
var notLowerHex = func() (t [256]uint8) {
	for i := range t {
		if c := byte(i); !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			t[i] = 1
		}
	}
	return t
}()

// wireHash accepts a lowercase hex SHA-256 digest, a lowercase 32-hex MD5 digest (the SDKs
// pass those through [C-py, C-node]) and the parameter builder's "<hex>.<appendix>" [C-pb].
func wireHash(v string) bool {
	lowerHex := func(s string) bool {
		var bad uint8
		for i := 0; i < len(s); i++ {
			bad |= notLowerHex[s[i]]
		}
		return bad == 0
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
