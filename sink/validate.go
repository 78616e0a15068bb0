package sink

import (
	"math"
	"strconv"
	"time"
	"unicode"
)

// Validation reasons. They are stable snake_case strings for metrics and dead-letter records.
// Each rule is one Meta states for the whole request: one failing event makes Meta reject
// every event in the request [D-use], which is why Validate runs per event before batching.
const (
	ReasonMissingEventName        = "missing_event_name"
	ReasonMissingEventTime        = "missing_event_time"
	ReasonEventTimeTooOld         = "event_time_too_old"
	ReasonEventTimeInFuture       = "event_time_in_future"
	ReasonMissingActionSource     = "missing_action_source"
	ReasonUnknownActionSource     = "unknown_action_source"
	ReasonWebsiteMissingURL       = "website_missing_event_source_url"
	ReasonWebsiteMissingUserAgent = "website_missing_user_agent"
	ReasonAppMissingAppData       = "app_missing_app_data"
	ReasonNoCustomerInformation   = "no_customer_information"
	ReasonInsufficientCustomer    = "insufficient_customer_information"
	ReasonUnhashedUserData        = "unhashed_user_data"
	ReasonInvalidLeadID           = "invalid_lead_id"
	ReasonPurchaseMissingValue    = "purchase_missing_value_or_currency"
	ReasonInvalidCurrency         = "invalid_currency"
	ReasonInvalidValue            = "invalid_value"
	ReasonContentMissingID        = "content_missing_id"
	ReasonInvalidDPO              = "invalid_data_processing_options"

	// Request-level reasons, from ValidateRequest.
	ReasonEmptyData           = "empty_data"
	ReasonTooManyEvents       = "too_many_events"
	ReasonInvalidPartnerAgent = "invalid_partner_agent"
)

// Defaults for ValidateOptions.
const (
	// DefaultMaxAge is Meta's hard limit: an older event fails the whole request [D-srv].
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxFutureSkew tolerates publisher clocks running a little fast. Meta documents
	// no limit, but future timestamps are reported to fail [I-ads3]; one minute is well
	// beyond NTP-synced drift and still catches milliseconds sent as seconds.
	DefaultMaxFutureSkew = time.Minute
	// MaxEventsPerRequest is Meta's cap on the data array [D-use].
	MaxEventsPerRequest = 1000
)

// ValidateOptions tunes Validate. The zero value means Meta's limits.
type ValidateOptions struct {
	// MaxAge is how old event_time may be. Zero means DefaultMaxAge. Callers that batch
	// for a while may want less, so an event does not age out between Validate and send.
	MaxAge time.Duration
	// MaxFutureSkew is how far event_time may be ahead of now. Zero means
	// DefaultMaxFutureSkew; negative means no tolerance at all.
	MaxFutureSkew time.Duration
	// PhysicalStoreMaxAge, when above MaxAge, lets physical_store events be this old (at
	// most MaxPhysicalStoreAge). Meta's offline docs say to upload store events "within 62
	// days" while the same pages repeat the 7-day rule, so this is an opt-in for datasets
	// where the longer window has been seen to work [D-use, D-off].
	PhysicalStoreMaxAge time.Duration
	// ClampFuture sets an event_time further ahead than MaxFutureSkew to now instead of
	// rejecting the event (the reference's advice for clock skew; Meta documents no limit).
	ClampFuture bool
}

// MaxPhysicalStoreAge is the longest store-event age Meta's offline docs mention.
const MaxPhysicalStoreAge = 62 * 24 * time.Hour

// InvalidError says why an event (or request) would be rejected by Meta. It names the field
// but never carries a value: error strings end up in logs.
type InvalidError struct {
	Reason string // one of the Reason… constants
	Field  string // wire path of the offending field, e.g. "user_data.em"; may be empty
	Detail string // human explanation without personal data
}

func (e *InvalidError) Error() string {
	s := "sink: invalid event: " + e.Reason
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// actionSources is the allowed action_source set [D-srv; C-py action_source.py].
var actionSources = map[string]struct{}{
	"email": {}, "website": {}, "app": {}, "phone_call": {}, "chat": {}, "physical_store": {},
	"system_generated": {}, "business_messaging": {}, "other": {},
}

// Customer information parameters present in an event, as bits, so the "insufficient only"
// combinations are subset tests.
const (
	ciEm uint32 = 1 << iota
	ciPh
	ciFn
	ciLn
	ciDb
	ciGe
	ciCt
	ciSt
	ciZp
	ciCountry
	ciExternalID
	ciIP
	ciUA
	ciFBC
	ciFBP
	ciLeadID
)

// insufficientSets: an event whose customer information is one of these sets, or a subset of
// one, is invalid since v13 [D-bp].
var insufficientSets = [...]uint32{
	ciCt | ciCountry | ciSt | ciZp | ciGe | ciUA,
	ciDb | ciUA,
	ciFn | ciGe,
	ciLn | ciGe,
}

// Validate checks ev against the rules Meta applies to each event, so one bad event can be
// dead-lettered instead of failing a whole batch. It returns nil or an *InvalidError.
func Validate(ev *Event, now time.Time, opts ValidateOptions) error {
	maxAge := opts.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	skew := opts.MaxFutureSkew
	switch {
	case skew == 0:
		skew = DefaultMaxFutureSkew
	case skew < 0:
		skew = 0
	}

	if ev.EventName == "" {
		return &InvalidError{Reason: ReasonMissingEventName, Field: "event_name"}
	}
	if ev.EventTime <= 0 {
		return &InvalidError{Reason: ReasonMissingEventTime, Field: "event_time"}
	}
	if ev.ActionSource == "physical_store" && opts.PhysicalStoreMaxAge > maxAge {
		maxAge = min(opts.PhysicalStoreMaxAge, MaxPhysicalStoreAge)
	}
	t := time.Unix(ev.EventTime, 0)
	if opts.ClampFuture && t.Sub(now) > skew {
		ev.EventTime = now.Unix()
		t = time.Unix(ev.EventTime, 0)
	}
	if age := now.Sub(t); age > maxAge {
		return &InvalidError{Reason: ReasonEventTimeTooOld, Field: "event_time",
			Detail: "age " + age.Truncate(time.Second).String() + " exceeds " + maxAge.String()}
	}
	if ahead := t.Sub(now); ahead > skew {
		return &InvalidError{Reason: ReasonEventTimeInFuture, Field: "event_time",
			Detail: ahead.Truncate(time.Second).String() + " ahead of now; tolerance " + skew.String()}
	}

	switch ev.ActionSource {
	case "":
		return &InvalidError{Reason: ReasonMissingActionSource, Field: "action_source"}
	case "website":
		// [D-params, D-bp]
		if ev.EventSourceURL == "" {
			return &InvalidError{Reason: ReasonWebsiteMissingURL, Field: "event_source_url"}
		}
		if ev.User.ClientUserAgent == "" {
			return &InvalidError{Reason: ReasonWebsiteMissingUserAgent, Field: "user_data.client_user_agent"}
		}
	case "app":
		// app_data is required for app events [D-srv] and the wire Event has none, so an
		// app event cannot be sent correctly from here.
		return &InvalidError{Reason: ReasonAppMissingAppData, Field: "app_data"}
	default:
		if _, ok := actionSources[ev.ActionSource]; !ok {
			return &InvalidError{Reason: ReasonUnknownActionSource, Field: "action_source",
				Detail: "not one of Meta's action_source values"}
		}
	}

	if err := validateUserData(&ev.User); err != nil {
		return err
	}
	if err := validateCustom(ev); err != nil {
		return err
	}
	return validateDPO(ev)
}

func validateUserData(u *UserData) error {
	var present uint32
	hashed := [...]struct {
		key  string
		vals []string
		bit  uint32
	}{
		{"em", u.Em, ciEm}, {"ph", u.Ph, ciPh}, {"fn", u.Fn, ciFn}, {"ln", u.Ln, ciLn},
		{"db", u.Db, ciDb}, {"ge", u.Ge, ciGe}, {"ct", u.Ct, ciCt}, {"st", u.St, ciSt},
		{"zp", u.Zp, ciZp}, {"country", u.Country, ciCountry},
	}
	for _, f := range hashed {
		for i, v := range f.vals {
			// Meta rejects unhashed contact information [D-cust].
			if !IsWireHash(v) {
				return &InvalidError{Reason: ReasonUnhashedUserData, Field: "user_data." + f.key,
					Detail: "value " + strconv.Itoa(i) + " is not a lowercase hex SHA-256 digest"}
			}
		}
		if len(f.vals) > 0 {
			present |= f.bit
		}
	}
	if len(u.ExternalID) > 0 {
		present |= ciExternalID
	}
	if u.ClientIPAddress != "" {
		present |= ciIP
	}
	if u.ClientUserAgent != "" {
		present |= ciUA
	}
	if u.FBC != "" {
		present |= ciFBC
	}
	if u.FBP != "" {
		present |= ciFBP
	}
	if u.LeadID != "" {
		if !isLeadID(string(u.LeadID)) {
			return &InvalidError{Reason: ReasonInvalidLeadID, Field: "user_data.lead_id",
				Detail: "want the 15-17 digit Lead Ads id"}
		}
		present |= ciLeadID
	}
	if present == 0 {
		// At least one customer information parameter is required [D-cust].
		return &InvalidError{Reason: ReasonNoCustomerInformation, Field: "user_data"}
	}
	for _, set := range insufficientSets {
		if present&^set == 0 {
			return &InvalidError{Reason: ReasonInsufficientCustomer, Field: "user_data",
				Detail: "only " + ciNames(present) + ", which Meta treats as insufficient alone"}
		}
	}
	return nil
}

func ciNames(present uint32) string {
	names := [...]string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country",
		"external_id", "client_ip_address", "client_user_agent", "fbc", "fbp", "lead_id"}
	s := ""
	for i, n := range names {
		if present&(1<<i) != 0 {
			if s != "" {
				s += "+"
			}
			s += n
		}
	}
	return s
}

func validateCustom(ev *Event) error {
	c := ev.Custom
	if ev.EventName == "Purchase" && (c == nil || c.Value == nil || c.Currency == "") {
		// [D-std]
		return &InvalidError{Reason: ReasonPurchaseMissingValue, Field: "custom_data"}
	}
	if c == nil {
		return nil
	}
	if c.Value != nil && (math.IsNaN(*c.Value) || math.IsInf(*c.Value, 0)) {
		return &InvalidError{Reason: ReasonInvalidValue, Field: "custom_data.value", Detail: "not a finite number"}
	}
	if c.Currency != "" {
		if _, ok := currencyCodes[c.Currency]; !ok {
			return &InvalidError{Reason: ReasonInvalidCurrency, Field: "custom_data.currency",
				Detail: "not an uppercase ISO-4217 code"}
		}
	}
	for i := range c.Contents {
		if c.Contents[i].ID == "" {
			// Offline contents need id and quantity [D-off].
			return &InvalidError{Reason: ReasonContentMissingID, Field: "custom_data.contents",
				Detail: "content " + strconv.Itoa(i) + " has no id"}
		}
		if p := c.Contents[i].ItemPrice; p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			return &InvalidError{Reason: ReasonInvalidValue, Field: "custom_data.contents.item_price",
				Detail: "content " + strconv.Itoa(i) + " price is not a finite number"}
		}
	}
	return nil
}

func validateDPO(ev *Event) error {
	ldu := false
	for _, o := range ev.DataProcessingOptions {
		if o != "LDU" { // the only accepted value [D-ldu]
			return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options",
				Detail: "only \"LDU\" is accepted"}
		}
		ldu = true
	}
	if ldu && ev.DataProcessingOptionsCountry == nil {
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_country",
			Detail: "required with LDU (0 lets Meta geolocate)"}
	}
	return nil
}

// ValidateRequest checks the request-level limits and then every event. An event's error is
// wrapped with its index; errors.As still finds the *InvalidError.
func ValidateRequest(req *Request, now time.Time, opts ValidateOptions) error {
	if len(req.Data) == 0 {
		return &InvalidError{Reason: ReasonEmptyData, Field: "data"}
	}
	if len(req.Data) > MaxEventsPerRequest {
		return &InvalidError{Reason: ReasonTooManyEvents, Field: "data",
			Detail: strconv.Itoa(len(req.Data)) + " events, max " + strconv.Itoa(MaxEventsPerRequest)}
	}
	if req.PartnerAgent != "" && !ValidPartnerAgent(req.PartnerAgent) {
		return &InvalidError{Reason: ReasonInvalidPartnerAgent, Field: "partner_agent",
			Detail: "must be fewer than 23 characters with at least two letters"}
	}
	for i := range req.Data {
		if err := Validate(&req.Data[i], now, opts); err != nil {
			return &EventError{Index: i, Err: err}
		}
	}
	return nil
}

// EventError locates an invalid event within a request.
type EventError struct {
	Index int
	Err   error
}

func (e *EventError) Error() string { return "event " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }
func (e *EventError) Unwrap() error { return e.Err }

// ValidPartnerAgent applies Meta's partner_agent rule: fewer than 23 characters and at least
// two letters [D-e2e].
func ValidPartnerAgent(s string) bool {
	n, letters := 0, 0
	for _, r := range s {
		n++
		if unicode.IsLetter(r) {
			letters++
		}
	}
	return n < 23 && letters >= 2
}
