package schema

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// Encoder writes Events as records of the embedded schemas, for demos, tests and
// benchmarks. It encodes what it is given, including events the Decoder would reject
// (an empty event_id, say), so tests can produce bad records; but it refuses an event
// holding data its schema has no field for, rather than silently dropping it.
// It is safe for concurrent use.
type Encoder struct {
	web, offline *goavro.Codec
}

// NewEncoder compiles the embedded schemas.
func NewEncoder() (*Encoder, error) {
	web, err := goavro.NewCodecWithOptions(webEventAvsc, codecOptions())
	if err != nil {
		return nil, fmt.Errorf("schema: compiling %s: %w", SchemaWebEvent, err)
	}
	offline, err := goavro.NewCodecWithOptions(offlineEventAvsc, codecOptions())
	if err != nil {
		return nil, fmt.Errorf("schema: compiling %s: %w", SchemaOfflineEvent, err)
	}
	return &Encoder{web: web, offline: offline}, nil
}

// AppendRaw appends ev as a bare Avro body of the embedded schema its Kind names
// (WebEvent for KindWeb, OfflineEvent for KindOffline).
func (e *Encoder) AppendRaw(dst []byte, ev Event) ([]byte, error) {
	var (
		codec  *goavro.Codec
		native map[string]any
		lost   []string
	)
	switch ev.Kind {
	case KindWeb:
		codec, native, lost = e.web, webNative(&ev), webLost(&ev)
	case KindOffline:
		codec, native, lost = e.offline, offlineNative(&ev), offlineLost(&ev)
	default:
		return dst, fmt.Errorf("schema: encoding event of kind %s: want web or offline", ev.Kind)
	}
	if len(lost) > 0 {
		return dst, fmt.Errorf("schema: encoding %s event: the schema has no room for %s", ev.Kind, strings.Join(lost, ", "))
	}
	out, err := codec.BinaryFromNative(dst, native)
	if err != nil {
		return dst, fmt.Errorf("schema: encoding %s event: %w", ev.Kind, err)
	}
	return out, nil
}

// AppendWire appends ev in Confluent wire format: the header for schemaID, then the raw
// body. schemaID must be the id under which the registry holds the embedded schema of
// ev's Kind (see [EmbeddedSchema]).
func (e *Encoder) AppendWire(dst []byte, schemaID int, ev Event) ([]byte, error) {
	n := len(dst)
	out, err := e.AppendRaw(AppendWireHeader(dst, schemaID), ev)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// AppendWireHeader appends the 5-byte Confluent wire-format header: magic byte 0 and the
// schema id as a 4-byte big-endian integer.
func AppendWireHeader(dst []byte, schemaID int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, 0), uint32(schemaID))
}

// optString is a ["null","string"] value: null for "".
func optString(s string) any {
	if s == "" {
		return nil
	}
	return goavro.Union("string", s)
}

func optDouble(f *float64) any {
	if f == nil {
		return nil
	}
	return goavro.Union("double", *f)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func strings2any(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func consentNative(c Consent) any {
	if !c.Known {
		return nil
	}
	return goavro.Union(namespace+".Consent", map[string]any{
		"ads_allowed":      c.AdsAllowed,
		"limited_data_use": c.LimitedDataUse,
		"ldu_country":      c.LDUCountry,
		"ldu_state":        c.LDUState,
	})
}

func optLong(n int64) any {
	if n == 0 {
		return nil
	}
	return goavro.Union("long", n)
}

func optBool(b *bool) any {
	if b == nil {
		return nil
	}
	return goavro.Union("boolean", *b)
}

func contentsNative(cs []Content) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = map[string]any{
			"id": c.ID, "quantity": c.Quantity, "item_price": optDouble(c.ItemPrice),
			"title": optString(c.Title), "description": optString(c.Description),
			"brand": optString(c.Brand), "category": optString(c.Category),
			"delivery_category": optString(c.DeliveryCategory),
		}
	}
	return out
}

func customEmpty(c *CustomData) bool {
	return c.Value == nil && c.Currency == "" && c.OrderID == "" && c.ItemNumber == "" &&
		len(c.ContentIDs) == 0 && c.ContentType == "" && len(c.Contents) == 0 &&
		c.ContentName == "" && c.ContentCategory == "" && c.PredictedLTV == nil &&
		c.NetRevenue == nil && c.NumItems == 0 && c.SearchString == "" && c.Status == "" &&
		c.DeliveryCategory == "" && c.Store == nil
}

// customNative is the custom_data record; both schemas carry the same fields.
func customNative(c *CustomData, record string) any {
	if customEmpty(c) {
		return nil
	}
	var store any
	if sd := c.Store; sd != nil {
		store = goavro.Union(namespace+".StoreData", map[string]any{
			"store_page_id": optString(sd.StorePageID),
			"brand_page_id": optString(sd.BrandPageID),
			"store_code":    optString(sd.StoreCode),
		})
	}
	return goavro.Union(namespace+"."+record, map[string]any{
		"value":             optDouble(c.Value),
		"currency":          optString(c.Currency),
		"order_id":          optString(c.OrderID),
		"item_number":       optString(c.ItemNumber),
		"content_ids":       strings2any(c.ContentIDs),
		"content_type":      optString(c.ContentType),
		"contents":          contentsNative(c.Contents),
		"content_name":      optString(c.ContentName),
		"content_category":  optString(c.ContentCategory),
		"predicted_ltv":     optDouble(c.PredictedLTV),
		"net_revenue":       optDouble(c.NetRevenue),
		"num_items":         optLong(c.NumItems),
		"search_string":     optString(c.SearchString),
		"status":            optString(c.Status),
		"delivery_category": optString(c.DeliveryCategory),
		"store_data":        store,
	})
}

func originalNative(o *OriginalEventData) any {
	if o == nil {
		return nil
	}
	return goavro.Union(namespace+".OriginalEventData", map[string]any{
		"event_name": optString(o.EventName),
		"event_time": optLong(o.EventTime),
		"order_id":   optString(o.OrderID),
		"event_id":   optString(o.EventID),
	})
}

func appNative(a *AppData) any {
	if a == nil {
		return nil
	}
	return goavro.Union(namespace+".AppData", map[string]any{
		"advertiser_tracking_enabled":  optBool(a.AdvertiserTrackingEnabled),
		"application_tracking_enabled": optBool(a.ApplicationTrackingEnabled),
		"extinfo":                      strings2any(a.ExtInfo),
		"campaign_ids":                 optString(a.CampaignIDs),
		"install_referrer":             optString(a.InstallReferrer),
		"installer_package":            optString(a.InstallerPackage),
		"url_schemes":                  strings2any(a.URLSchemes),
		"windows_attribution_id":       optString(a.WindowsAttributionID),
		"vendor_id":                    optString(a.VendorID),
	})
}

// identityNative holds the never-hashed identifiers of the Customer record (both schemas).
func identityNative(u *UserData, into map[string]any) map[string]any {
	into["subscription_id"] = optString(u.SubscriptionID)
	into["fb_login_id"] = optString(u.FBLoginID)
	into["anon_id"] = optString(u.AnonID)
	into["madid"] = optString(u.MADID)
	into["page_id"] = optString(u.PageID)
	into["page_scoped_user_id"] = optString(u.PageScopedUserID)
	into["ctwa_clid"] = optString(u.CTWAClid)
	into["ig_account_id"] = optString(u.IGAccountID)
	into["ig_sid"] = optString(u.IGSID)
	into["whatsapp_business_account_id"] = optString(u.WhatsAppBusinessAccountID)
	return into
}

func hasIdentity(u *UserData) bool {
	return u.SubscriptionID != "" || u.FBLoginID != "" || u.AnonID != "" || u.MADID != "" ||
		u.PageID != "" || u.PageScopedUserID != "" || u.CTWAClid != "" || u.IGAccountID != "" ||
		u.IGSID != "" || u.WhatsAppBusinessAccountID != ""
}

// rest returns s without its first element, for the Customer arrays that extend WebEvent's
// single top-level email and phone.
func rest(s []string) []string {
	if len(s) < 2 {
		return nil
	}
	return s[1:]
}

func webNative(ev *Event) map[string]any {
	u := &ev.User
	var customer any
	if len(u.Emails) > 1 || len(u.Phones) > 1 || len(u.FirstNames)+len(u.LastNames)+
		len(u.DatesOfBirth)+len(u.Genders)+len(u.Cities)+len(u.States)+len(u.Zips)+
		len(u.Countries) > 0 || u.LeadID != "" || hasIdentity(u) {
		customer = goavro.Union(namespace+".Customer", identityNative(u, map[string]any{
			"emails":        strings2any(rest(u.Emails)),
			"phones":        strings2any(rest(u.Phones)),
			"first_name":    optString(first(u.FirstNames)),
			"last_name":     optString(first(u.LastNames)),
			"date_of_birth": optString(first(u.DatesOfBirth)),
			"gender":        optString(first(u.Genders)),
			"city":          optString(first(u.Cities)),
			"state":         optString(first(u.States)),
			"zip":           optString(first(u.Zips)),
			"country":       optString(first(u.Countries)),
			"lead_id":       optString(u.LeadID),
		}))
	}
	return map[string]any{
		"event_id":          ev.EventID,
		"event_name":        ev.EventName,
		"event_time":        ev.EventTime,
		"pixel_id":          ev.PixelID,
		"event_source_url":  ev.EventSourceURL,
		"referrer_url":      optString(ev.ReferrerURL),
		"action_source":     optString(ev.ActionSource),
		"client_ip_address": u.ClientIPAddress,
		"client_user_agent": u.ClientUserAgent,
		"fbp":               u.FBP,
		"fbc":               u.FBC,
		"external_id":       optString(first(u.ExternalIDs)),
		"email":             optString(first(u.Emails)),
		"phone":             optString(first(u.Phones)),
		"opt_out":           ev.OptOut,
		"consent":           consentNative(ev.Consent),
		"custom_data":       customNative(&ev.Custom, "WebCustomData"),
		"customer":          customer,

		"customer_segmentation": optString(ev.CustomerSegmentation),
		"original_event_data":   originalNative(ev.OriginalEvent),
		"app_data":              appNative(ev.App),
	}
}

// webLost names the Event fields holding data WebEvent cannot carry.
func webLost(ev *Event) []string {
	u := &ev.User
	var lost []string
	add := func(cond bool, name string) {
		if cond {
			lost = append(lost, name)
		}
	}
	add(len(u.ExternalIDs) > 1, "more than one User.ExternalIDs")
	for _, f := range []struct {
		n    int
		name string
	}{
		{len(u.FirstNames), "User.FirstNames"}, {len(u.LastNames), "User.LastNames"},
		{len(u.DatesOfBirth), "User.DatesOfBirth"}, {len(u.Genders), "User.Genders"},
		{len(u.Cities), "User.Cities"}, {len(u.States), "User.States"},
		{len(u.Zips), "User.Zips"}, {len(u.Countries), "User.Countries"},
	} {
		add(f.n > 1, "more than one "+f.name)
	}
	add(ev.CRMName != "", "CRMName")
	add(ev.MessagingChannel != "", "MessagingChannel")
	return lost
}

func offlineNative(ev *Event) map[string]any {
	u := &ev.User
	var customer any
	if len(u.Emails)+len(u.Phones)+len(u.FirstNames)+len(u.LastNames)+len(u.DatesOfBirth)+
		len(u.Genders)+len(u.Cities)+len(u.States)+len(u.Zips)+len(u.Countries)+
		len(u.ExternalIDs) > 0 || u.LeadID != "" || hasIdentity(u) {
		customer = goavro.Union(namespace+".Customer", identityNative(u, map[string]any{
			"emails":        strings2any(u.Emails),
			"phones":        strings2any(u.Phones),
			"first_name":    optString(first(u.FirstNames)),
			"last_name":     optString(first(u.LastNames)),
			"date_of_birth": optString(first(u.DatesOfBirth)),
			"gender":        optString(first(u.Genders)),
			"city":          optString(first(u.Cities)),
			"state":         optString(first(u.States)),
			"zip":           optString(first(u.Zips)),
			"country":       optString(first(u.Countries)),
			"external_id":   optString(first(u.ExternalIDs)),
			"lead_id":       optString(u.LeadID),
		}))
	}
	return map[string]any{
		"event_id":      ev.EventID,
		"event_name":    ev.EventName,
		"event_time":    ev.EventTime,
		"pixel_id":      ev.PixelID,
		"action_source": ev.ActionSource,
		"customer":      customer,
		"custom_data":   customNative(&ev.Custom, "OfflineCustomData"),
		"consent":       consentNative(ev.Consent),
		"crm_name":      optString(ev.CRMName),

		"opt_out":               ev.OptOut,
		"client_ip_address":     optString(u.ClientIPAddress),
		"client_user_agent":     optString(u.ClientUserAgent),
		"fbc":                   optString(u.FBC),
		"fbp":                   optString(u.FBP),
		"messaging_channel":     optString(ev.MessagingChannel),
		"customer_segmentation": optString(ev.CustomerSegmentation),
		"original_event_data":   originalNative(ev.OriginalEvent),
	}
}

// offlineLost names the Event fields holding data OfflineEvent cannot carry.
func offlineLost(ev *Event) []string {
	u := &ev.User
	var lost []string
	add := func(cond bool, name string) {
		if cond {
			lost = append(lost, name)
		}
	}
	for _, f := range []struct {
		n    int
		name string
	}{
		{len(u.FirstNames), "User.FirstNames"}, {len(u.LastNames), "User.LastNames"},
		{len(u.DatesOfBirth), "User.DatesOfBirth"}, {len(u.Genders), "User.Genders"},
		{len(u.Cities), "User.Cities"}, {len(u.States), "User.States"},
		{len(u.Zips), "User.Zips"}, {len(u.Countries), "User.Countries"},
		{len(u.ExternalIDs), "User.ExternalIDs"},
	} {
		add(f.n > 1, "more than one "+f.name)
	}
	add(ev.EventSourceURL != "", "EventSourceURL")
	add(ev.ReferrerURL != "", "ReferrerURL")
	add(ev.App != nil, "App")
	return lost
}
