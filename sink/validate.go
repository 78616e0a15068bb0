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
	ReasonInvalidAppData          = "invalid_app_data"
	ReasonMissingMessagingChannel = "business_messaging_missing_channel"
	ReasonUnknownMessagingChannel = "unknown_messaging_channel"
	ReasonMessagingMissingIDs     = "business_messaging_missing_identifiers"
	ReasonInvalidSegmentation     = "invalid_customer_segmentation"
	ReasonInvalidDeliveryCategory = "invalid_delivery_category"
	ReasonInvalidOriginalEvent    = "invalid_original_event_data"
	ReasonInvalidFBLoginID        = "invalid_fb_login_id"

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
	// Built says the event comes straight from Build or BuildInto, its user_data unchanged
	// since. Its hashed values are then wire hashes by construction (Build hashes each value
	// or passes through only what IsWireHash accepts), and Validate does not check them one
	// by one again: that second pass was half of what validating cost the relay.
	Built bool
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
	ciOtherID // any of the app, login and messaging ids
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
		// app_data is required for app events [D-srv]; its shape is checked below.
		if ev.App == nil {
			return &InvalidError{Reason: ReasonAppMissingAppData, Field: "app_data"}
		}
		if ev.App.AdvertiserTrackingEnabled == nil {
			return &InvalidError{Reason: ReasonInvalidAppData, Field: "app_data.advertiser_tracking_enabled",
				Detail: "required for app events"}
		}
		if ev.App.ExtInfo == nil {
			return &InvalidError{Reason: ReasonInvalidAppData, Field: "app_data.extinfo",
				Detail: "required for app events"}
		}
	case "business_messaging":
		// [D-bm] The channel says which of Meta's messaging identifiers the event needs.
		if ev.MessagingChannel == "" {
			return &InvalidError{Reason: ReasonMissingMessagingChannel, Field: "messaging_channel",
				Detail: "business_messaging events name whatsapp, messenger or instagram"}
		}
	default:
		if _, ok := actionSources[ev.ActionSource]; !ok {
			return &InvalidError{Reason: ReasonUnknownActionSource, Field: "action_source",
				Detail: "not one of Meta's action_source values"}
		}
	}

	if err := validateEventParams(ev); err != nil {
		return err
	}
	if err := validateUserData(&ev.User, !opts.Built); err != nil {
		return err
	}
	if err := validateCustom(ev); err != nil {
		return err
	}
	return validateDPO(ev)
}

// extInfoLen is the number of positional slots of app_data.extinfo [D-params].
const extInfoLen = 16

// validateEventParams checks the optional server event parameters that are present, whatever
// the action_source: a malformed one fails the batch as surely on a web event as on an app one.
func validateEventParams(ev *Event) error {
	if ch := ev.MessagingChannel; ch != "" {
		if !inSet(messagingChannels[:], ch) {
			return &InvalidError{Reason: ReasonUnknownMessagingChannel, Field: "messaging_channel",
				Detail: "want whatsapp, messenger or instagram"}
		}
		if ev.ActionSource == "business_messaging" {
			if err := validateMessagingIDs(ch, &ev.User); err != nil {
				return err
			}
		}
	}
	if s := ev.CustomerSegmentation; s != "" && !inSet(customerSegments[:], s) {
		return &InvalidError{Reason: ReasonInvalidSegmentation, Field: "customer_segmentation",
			Detail: "not one of Meta's customer_segmentation values"}
	}
	if a := ev.App; a != nil && a.ExtInfo != nil {
		if err := validateExtInfo(a.ExtInfo); err != nil {
			return err
		}
	}
	if o := ev.OriginalEventData; o != nil {
		// Every field is optional [D-oed], but an empty object says nothing, and event_time is
		// seconds there as it is on the event.
		if *o == (OriginalEventData{}) {
			return &InvalidError{Reason: ReasonInvalidOriginalEvent, Field: "original_event_data", Detail: "empty"}
		}
		if o.EventTime < 0 || o.EventTime >= 1e11 { // 1e11 s is the year 5138: milliseconds
			return &InvalidError{Reason: ReasonInvalidOriginalEvent, Field: "original_event_data.event_time",
				Detail: "must be Unix seconds"}
		}
	}
	return nil
}

// validateMessagingIDs requires the identifiers Meta's business messaging guide sends per
// channel [D-bm]: page_id + page_scoped_user_id (Messenger), whatsapp_business_account_id +
// ctwa_clid (WhatsApp), ig_sid (Instagram; the account id key differs between Meta's pages,
// so only the user id is required).
func validateMessagingIDs(channel string, u *UserData) error {
	var missing string
	switch channel {
	case "messenger":
		switch {
		case u.PageID == "":
			missing = "page_id"
		case u.PageScopedUserID == "":
			missing = "page_scoped_user_id"
		}
	case "whatsapp":
		switch {
		case u.WhatsAppBusinessAccountID == "":
			missing = "whatsapp_business_account_id"
		case u.CTWAClid == "":
			missing = "ctwa_clid"
		}
	case "instagram":
		if u.IGSID == "" {
			missing = "ig_sid"
		}
	}
	if missing != "" {
		return &InvalidError{Reason: ReasonMessagingMissingIDs, Field: "user_data." + missing,
			Detail: "required for " + channel + " business messaging events"}
	}
	return nil
}

// validateExtInfo checks extinfo's shape: exactly 16 positional strings, version a2 (Android)
// or i2 (iOS) first and the OS version (slot 4) present, the slots Meta marks required
// [D-params]. The other slots may be empty strings but must be there.
func validateExtInfo(ext []string) error {
	if len(ext) != extInfoLen {
		return &InvalidError{Reason: ReasonInvalidAppData, Field: "app_data.extinfo",
			Detail: strconv.Itoa(len(ext)) + " slots, want 16 (empty strings for unknown values)"}
	}
	if ext[0] != "a2" && ext[0] != "i2" {
		return &InvalidError{Reason: ReasonInvalidAppData, Field: "app_data.extinfo",
			Detail: "slot 0 (version) must be a2 (Android) or i2 (iOS)"}
	}
	if ext[4] == "" {
		return &InvalidError{Reason: ReasonInvalidAppData, Field: "app_data.extinfo",
			Detail: "slot 4 (OS version) is required"}
	}
	return nil
}

// validateUserData checks user_data; checkHashes: that each hashed value is a wire hash.
func validateUserData(u *UserData, checkHashes bool) error {
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
			if checkHashes && !IsWireHash(v) {
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
	if u.FBLoginID != "" && !isDigits(string(u.FBLoginID)) {
		return &InvalidError{Reason: ReasonInvalidFBLoginID, Field: "user_data.fb_login_id",
			Detail: "want the integer app-scoped id"}
	}
	if u.SubscriptionID != "" || u.FBLoginID != "" || u.AnonID != "" || u.MADID != "" ||
		u.PageID != "" || u.PageScopedUserID != "" || u.CTWAClid != "" || u.IGAccountID != "" ||
		u.IGSID != "" || u.WhatsAppBusinessAccountID != "" {
		// Each is a customer information parameter [D-cust]; none is in an insufficient set.
		present |= ciOtherID
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
		"external_id", "client_ip_address", "client_user_agent", "fbc", "fbp", "lead_id", "other ids"}
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
	for _, p := range [...]*float64{c.PredictedLTV, c.NetRevenue} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			return &InvalidError{Reason: ReasonInvalidValue, Field: "custom_data",
				Detail: "predicted_ltv or net_revenue is not a finite number"}
		}
	}
	if d := c.DeliveryCategory; d != "" && !inSet(deliveryCategories[:], d) {
		return &InvalidError{Reason: ReasonInvalidDeliveryCategory, Field: "custom_data.delivery_category",
			Detail: "want in_store, curbside or home_delivery"}
	}
	if s := c.CustomerSegmentation; s != "" && !inSet(customerSegments[:], s) {
		return &InvalidError{Reason: ReasonInvalidSegmentation, Field: "custom_data.customer_segmentation",
			Detail: "not one of Meta's customer_segmentation values"}
	}
	for i := range c.Contents {
		if d := c.Contents[i].DeliveryCategory; d != "" && !inSet(deliveryCategories[:], d) {
			return &InvalidError{Reason: ReasonInvalidDeliveryCategory, Field: "custom_data.contents.delivery_category",
				Detail: "content " + strconv.Itoa(i) + ": want in_store, curbside or home_delivery"}
		}
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

// validateDPO applies Limited Data Use's rules [D-ldu, D-srv]: "LDU" is the only option; with
// it, a country is required (1 USA, 0 geolocate) and a state is 0 (geolocate) or one of the
// 1000-1013 codes, required when there is no IP address to geolocate from; a state code
// names a US state, so it needs country 1.
func validateDPO(ev *Event) error {
	ldu := false
	for _, o := range ev.DataProcessingOptions {
		if o != "LDU" { // the only accepted value [D-ldu]
			return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options",
				Detail: "only \"LDU\" is accepted"}
		}
		ldu = true
	}
	if !ldu {
		return nil
	}
	country, state := ev.DataProcessingOptionsCountry, ev.DataProcessingOptionsState
	switch {
	case country == nil:
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_country",
			Detail: "required with LDU (0 lets Meta geolocate)"}
	case *country != 0 && *country != 1:
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_country",
			Detail: "want 1 (USA) or 0 (geolocate)"}
	case state == nil && ev.User.ClientIPAddress == "":
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_state",
			Detail: "required with LDU when there is no client_ip_address"}
	case state != nil && *state != 0 && (*state < 1000 || *state > 1013):
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_state",
			Detail: "want 0 (geolocate) or a state code from 1000 to 1013"}
	case state != nil && *state != 0 && *country != 1:
		return &InvalidError{Reason: ReasonInvalidDPO, Field: "data_processing_options_state",
			Detail: "a US state code needs data_processing_options_country 1"}
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
		if req.Data[i] == nil {
			return &EventError{Index: i, Err: &InvalidError{Reason: ReasonEmptyData, Field: "data", Detail: "the event is null"}}
		}
		if err := Validate(req.Data[i], now, opts); err != nil {
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
