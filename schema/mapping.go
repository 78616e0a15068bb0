package schema

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
)

// Fields are looked up by name in goavro's native form of the writer's record, never by
// position, so a writer schema that added or dropped optional fields decodes the same.
// Absent and null fields read as zero values; only the required ones are checked.

// millisThreshold: an event_time above it cannot be seconds (it would be the year 33658),
// so it is read as milliseconds.
const millisThreshold = 1_000_000_000_000

// mapper converts native values, keeping the first error so the mapping code can read
// straight through; after an error every conversion returns a zero value.
type mapper struct {
	err *DecodeError
}

func (m *mapper) fail(reason Reason, field string, err error) {
	if m.err == nil {
		m.err = &DecodeError{Reason: reason, Field: field, Err: err}
	}
}

// nest prefixes the field path of an error raised since mark was taken (mark is m.err
// before a nested record was mapped). Paths are built only on failure.
func (m *mapper) nest(mark *DecodeError, prefix string) {
	if m.err != nil && mark == nil {
		m.err.Field = prefix + m.err.Field
	}
}

// union returns the value inside goavro's representation of a non-null union branch,
// map[string]any{"<branch type name>": value}, or v unchanged when it is not one. Only
// scalar and array conversions use it: there, any map is necessarily a union wrapper.
// Records go through record, because a record is a map too.
func union(v any) any {
	if w, ok := v.(map[string]any); ok && len(w) == 1 {
		for _, x := range w {
			return x
		}
	}
	return v
}

// record returns v as a record, unwrapping a union around it. A one-field map whose value
// is itself a map is taken to be a union wrapper; none of the records the decoder reads
// has a single field holding a record or map, so this does not misread them.
func record(v any) (map[string]any, bool) {
	r, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	if len(r) == 1 {
		for _, x := range r {
			if inner, ok := x.(map[string]any); ok {
				return inner, true
			}
		}
	}
	return r, true
}

func typeErr(v any) error {
	return fmt.Errorf("unexpected Avro value of Go type %T", v)
}

func (m *mapper) str(rec map[string]any, name string) string {
	if m.err != nil {
		return ""
	}
	switch v := union(rec[name]).(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte: // Avro allows bytes to be read as string; publishers do switch.
		return string(v)
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return ""
	}
}

func (m *mapper) required(rec map[string]any, name string) string {
	s := m.str(rec, name)
	if s == "" && m.err == nil {
		m.fail(ReasonMissingField, name, nil)
	}
	return s
}

// strs reads a field that is an array of strings or, in schemas that carry one value, a
// single string. Empty strings are dropped: they are never a usable identifier.
func (m *mapper) strs(rec map[string]any, name string) []string {
	if m.err != nil {
		return nil
	}
	switch v := union(rec[name]).(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		var out []string
		for i, x := range v {
			switch s := union(x).(type) {
			case string:
				if s != "" {
					out = append(out, s)
				}
			case []byte:
				if len(s) > 0 {
					out = append(out, string(s))
				}
			case nil:
			default:
				m.fail(ReasonInvalidField, name+"["+strconv.Itoa(i)+"]", typeErr(s))
				return nil
			}
		}
		return out
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return nil
	}
}

func (m *mapper) long(rec map[string]any, name string) int64 {
	if m.err != nil {
		return 0
	}
	switch v := union(rec[name]).(type) {
	case nil:
		return 0
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return 0
	}
}

func (m *mapper) int32(rec map[string]any, name string) int32 {
	n := m.long(rec, name)
	if n < math.MinInt32 || n > math.MaxInt32 {
		m.fail(ReasonInvalidField, name, errors.New("out of int range"))
		return 0
	}
	return int32(n)
}

func (m *mapper) boolean(rec map[string]any, name string) bool {
	if m.err != nil {
		return false
	}
	switch v := union(rec[name]).(type) {
	case nil:
		return false
	case bool:
		return v
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return false
	}
}

// double reads an optional number; nil means absent or null. Decimal logical types come
// back from goavro as *big.Rat and are accepted, since money is often written that way.
func (m *mapper) double(rec map[string]any, name string) *float64 {
	if m.err != nil {
		return nil
	}
	var f float64
	switch v := union(rec[name]).(type) {
	case nil:
		return nil
	case float64:
		f = v
	case float32:
		f = float64(v)
	case int64:
		f = float64(v)
	case int32:
		f = float64(v)
	case *big.Rat:
		f, _ = v.Float64()
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		m.fail(ReasonInvalidField, name, errors.New("not a finite number"))
		return nil
	}
	return &f
}

// eventTime reads event_time as Unix seconds: a long in seconds or milliseconds, or a
// timestamp logical type (which goavro returns as time.Time).
func (m *mapper) eventTime(rec map[string]any) int64 {
	const name = "event_time"
	if m.err != nil {
		return 0
	}
	var t int64
	switch v := union(rec[name]).(type) {
	case time.Time:
		t = v.Unix()
	default:
		t = m.long(rec, name)
		if m.err != nil {
			return 0
		}
	}
	switch {
	case t == 0:
		m.fail(ReasonMissingField, name, nil)
	case t < 0:
		m.fail(ReasonInvalidField, name, errors.New("negative timestamp"))
	case t > millisThreshold:
		t /= 1000
		if t > millisThreshold {
			m.fail(ReasonInvalidField, name, errors.New("timestamp is neither seconds nor milliseconds"))
		}
	}
	return t
}

// toEvent maps a decoded record into an Event. Every field is read wherever it exists,
// whatever the kind, so a web schema that gains a customer record (or an offline one that
// gains fbp) is picked up without a code change; kind only picks defaults.
func toEvent(rec map[string]any, kind Kind) (Event, *DecodeError) {
	var m mapper
	ev := Event{Kind: kind}
	ev.EventID = m.required(rec, "event_id")
	ev.EventName = m.required(rec, "event_name")
	ev.EventTime = m.eventTime(rec)
	ev.PixelID = m.required(rec, "pixel_id")
	ev.ActionSource = m.str(rec, "action_source")
	ev.EventSourceURL = m.str(rec, "event_source_url")
	ev.ReferrerURL = m.str(rec, "referrer_url")
	ev.OptOut = m.boolean(rec, "opt_out")
	ev.CRMName = m.str(rec, "crm_name")
	ev.CustomerSegmentation = m.str(rec, "customer_segmentation")
	ev.MessagingChannel = m.str(rec, "messaging_channel")

	u := &ev.User
	u.ClientIPAddress = m.str(rec, "client_ip_address")
	u.ClientUserAgent = m.str(rec, "client_user_agent")
	u.FBP = m.str(rec, "fbp")
	u.FBC = m.str(rec, "fbc")
	u.Emails = m.strs(rec, "email")
	u.Phones = m.strs(rec, "phone")
	u.ExternalIDs = m.strs(rec, "external_id")
	m.customer(rec, u)
	m.consent(rec, &ev.Consent)
	m.customData(rec, &ev.Custom)
	ev.OriginalEvent = m.originalEvent(rec)
	ev.App = m.appData(rec)

	if m.err != nil {
		return Event{}, m.err
	}
	if ev.ActionSource == "" && kind == KindWeb {
		ev.ActionSource = "website"
	}
	return ev, nil
}

// nested returns the record in field name, or nil when absent or null.
func (m *mapper) nested(rec map[string]any, name string) map[string]any {
	if m.err != nil {
		return nil
	}
	v := rec[name]
	if v == nil {
		return nil
	}
	r, ok := record(v)
	if !ok {
		m.fail(ReasonInvalidField, name, typeErr(v))
	}
	return r
}

func (m *mapper) customer(rec map[string]any, u *UserData) {
	c := m.nested(rec, "customer")
	if c == nil {
		return
	}
	mark := m.err
	u.Emails = append(u.Emails, m.strs(c, "emails")...)
	u.Phones = append(u.Phones, m.strs(c, "phones")...)
	u.FirstNames = m.strs(c, "first_name")
	u.LastNames = m.strs(c, "last_name")
	u.DatesOfBirth = m.strs(c, "date_of_birth")
	u.Genders = m.strs(c, "gender")
	u.Cities = m.strs(c, "city")
	u.States = m.strs(c, "state")
	u.Zips = m.strs(c, "zip")
	u.Countries = m.strs(c, "country")
	u.ExternalIDs = append(u.ExternalIDs, m.strs(c, "external_id")...)
	if id := m.str(c, "lead_id"); id != "" {
		u.LeadID = id
	}
	u.SubscriptionID = m.str(c, "subscription_id")
	u.FBLoginID = m.str(c, "fb_login_id")
	u.AnonID = m.str(c, "anon_id")
	u.MADID = m.str(c, "madid")
	u.PageID = m.str(c, "page_id")
	u.PageScopedUserID = m.str(c, "page_scoped_user_id")
	u.CTWAClid = m.str(c, "ctwa_clid")
	u.IGAccountID = m.str(c, "ig_account_id")
	u.IGSID = m.str(c, "ig_sid")
	u.WhatsAppBusinessAccountID = m.str(c, "whatsapp_business_account_id")
	m.nest(mark, "customer.")
}

// originalEvent reads original_event_data; nil when absent, null or all empty.
func (m *mapper) originalEvent(rec map[string]any) *OriginalEventData {
	r := m.nested(rec, "original_event_data")
	if r == nil {
		return nil
	}
	mark := m.err
	o := OriginalEventData{
		EventName: m.str(r, "event_name"),
		EventTime: m.long(r, "event_time"),
		OrderID:   m.str(r, "order_id"),
		EventID:   m.str(r, "event_id"),
	}
	switch {
	case o.EventTime < 0:
		m.fail(ReasonInvalidField, "event_time", errors.New("negative timestamp"))
	case o.EventTime > millisThreshold:
		o.EventTime /= 1000 // same reading as the event's own event_time
	}
	m.nest(mark, "original_event_data.")
	if m.err != nil || o == (OriginalEventData{}) {
		return nil
	}
	return &o
}

// appData reads app_data; nil when absent or null.
func (m *mapper) appData(rec map[string]any) *AppData {
	r := m.nested(rec, "app_data")
	if r == nil {
		return nil
	}
	mark := m.err
	a := &AppData{
		AdvertiserTrackingEnabled:  m.optBool(r, "advertiser_tracking_enabled"),
		ApplicationTrackingEnabled: m.optBool(r, "application_tracking_enabled"),
		ExtInfo:                    m.slots(r, "extinfo"),
		CampaignIDs:                m.str(r, "campaign_ids"),
		InstallReferrer:            m.str(r, "install_referrer"),
		InstallerPackage:           m.str(r, "installer_package"),
		URLSchemes:                 m.strs(r, "url_schemes"),
		WindowsAttributionID:       m.str(r, "windows_attribution_id"),
		VendorID:                   m.str(r, "vendor_id"),
	}
	m.nest(mark, "app_data.")
	if m.err != nil {
		return nil
	}
	return a
}

// optBool reads an optional boolean: nil when absent or null.
func (m *mapper) optBool(rec map[string]any, name string) *bool {
	if m.err != nil || union(rec[name]) == nil {
		return nil
	}
	b := m.boolean(rec, name)
	if m.err != nil {
		return nil
	}
	return &b
}

// slots reads a positional array of strings, keeping empty strings: unlike identifier lists,
// an empty slot of extinfo is a value ("unknown"), and dropping it would shift the rest.
func (m *mapper) slots(rec map[string]any, name string) []string {
	if m.err != nil {
		return nil
	}
	switch v := union(rec[name]).(type) {
	case nil:
		return nil
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]string, len(v))
		for i, x := range v {
			switch s := union(x).(type) {
			case string:
				out[i] = s
			case []byte:
				out[i] = string(s)
			case nil:
			default:
				m.fail(ReasonInvalidField, name+"["+strconv.Itoa(i)+"]", typeErr(s))
				return nil
			}
		}
		return out
	default:
		m.fail(ReasonInvalidField, name, typeErr(v))
		return nil
	}
}

func (m *mapper) consent(rec map[string]any, c *Consent) {
	r := m.nested(rec, "consent")
	if r == nil {
		return
	}
	mark := m.err
	c.Known = true
	c.AdsAllowed = m.boolean(r, "ads_allowed")
	c.LimitedDataUse = m.boolean(r, "limited_data_use")
	c.LDUCountry = m.int32(r, "ldu_country")
	c.LDUState = m.int32(r, "ldu_state")
	m.nest(mark, "consent.")
}

func (m *mapper) customData(rec map[string]any, cd *CustomData) {
	r := m.nested(rec, "custom_data")
	if r == nil {
		return
	}
	mark := m.err
	cd.Value = m.double(r, "value")
	cd.Currency = m.str(r, "currency")
	cd.OrderID = m.str(r, "order_id")
	cd.ItemNumber = m.str(r, "item_number")
	cd.ContentIDs = m.strs(r, "content_ids")
	cd.ContentType = m.str(r, "content_type")
	cd.Contents = m.contents(r)
	cd.ContentName = m.str(r, "content_name")
	cd.ContentCategory = m.str(r, "content_category")
	cd.PredictedLTV = m.double(r, "predicted_ltv")
	cd.NetRevenue = m.double(r, "net_revenue")
	cd.NumItems = m.long(r, "num_items")
	cd.SearchString = m.str(r, "search_string")
	cd.Status = m.str(r, "status")
	cd.DeliveryCategory = m.str(r, "delivery_category")
	cd.Store = m.storeData(r)
	m.nest(mark, "custom_data.")
}

// storeData reads store_data; nil when absent, null or all empty.
func (m *mapper) storeData(rec map[string]any) *StoreData {
	r := m.nested(rec, "store_data")
	if r == nil {
		return nil
	}
	mark := m.err
	sd := StoreData{
		StorePageID: m.str(r, "store_page_id"),
		BrandPageID: m.str(r, "brand_page_id"),
		StoreCode:   m.str(r, "store_code"),
	}
	m.nest(mark, "store_data.")
	if m.err != nil || sd == (StoreData{}) {
		return nil
	}
	return &sd
}

func (m *mapper) contents(rec map[string]any) []Content {
	if m.err != nil {
		return nil
	}
	var items []any
	switch v := union(rec["contents"]).(type) {
	case nil:
		return nil
	case []any:
		items = v
	default:
		m.fail(ReasonInvalidField, "contents", typeErr(v))
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	out := make([]Content, 0, len(items))
	for i, x := range items {
		r, ok := record(x)
		if !ok {
			m.fail(ReasonInvalidField, "contents["+strconv.Itoa(i)+"]", typeErr(x))
			return nil
		}
		out = append(out, Content{
			ID:               m.str(r, "id"),
			Quantity:         m.long(r, "quantity"),
			ItemPrice:        m.double(r, "item_price"),
			Title:            m.str(r, "title"),
			Description:      m.str(r, "description"),
			Brand:            m.str(r, "brand"),
			Category:         m.str(r, "category"),
			DeliveryCategory: m.str(r, "delivery_category"),
		})
		if m.err != nil {
			m.err.Field = "contents[" + strconv.Itoa(i) + "]." + m.err.Field
			return nil
		}
	}
	return out
}
