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

func contentsNative(cs []Content) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = map[string]any{"id": c.ID, "quantity": c.Quantity, "item_price": optDouble(c.ItemPrice)}
	}
	return out
}

func customEmpty(c *CustomData) bool {
	return c.Value == nil && c.Currency == "" && c.OrderID == "" && c.ItemNumber == "" &&
		len(c.ContentIDs) == 0 && c.ContentType == "" && len(c.Contents) == 0
}

func webNative(ev *Event) map[string]any {
	u := &ev.User
	var custom any
	if c := &ev.Custom; !customEmpty(c) {
		custom = goavro.Union(namespace+".WebCustomData", map[string]any{
			"value":        optDouble(c.Value),
			"currency":     optString(c.Currency),
			"order_id":     optString(c.OrderID),
			"content_ids":  strings2any(c.ContentIDs),
			"content_type": optString(c.ContentType),
			"contents":     contentsNative(c.Contents),
		})
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
		"custom_data":       custom,
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
	add(len(u.Emails) > 1, "more than one User.Emails")
	add(len(u.Phones) > 1, "more than one User.Phones")
	add(len(u.ExternalIDs) > 1, "more than one User.ExternalIDs")
	add(len(u.FirstNames) > 0, "User.FirstNames")
	add(len(u.LastNames) > 0, "User.LastNames")
	add(len(u.DatesOfBirth) > 0, "User.DatesOfBirth")
	add(len(u.Genders) > 0, "User.Genders")
	add(len(u.Cities) > 0, "User.Cities")
	add(len(u.States) > 0, "User.States")
	add(len(u.Zips) > 0, "User.Zips")
	add(len(u.Countries) > 0, "User.Countries")
	add(u.LeadID != "", "User.LeadID")
	add(ev.Custom.ItemNumber != "", "Custom.ItemNumber")
	add(ev.CRMName != "", "CRMName")
	return lost
}

func offlineNative(ev *Event) map[string]any {
	u := &ev.User
	var customer any
	if len(u.Emails)+len(u.Phones)+len(u.FirstNames)+len(u.LastNames)+len(u.DatesOfBirth)+
		len(u.Genders)+len(u.Cities)+len(u.States)+len(u.Zips)+len(u.Countries)+
		len(u.ExternalIDs) > 0 || u.LeadID != "" {
		customer = goavro.Union(namespace+".Customer", map[string]any{
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
		})
	}
	var custom any
	if c := &ev.Custom; !customEmpty(c) {
		custom = goavro.Union(namespace+".OfflineCustomData", map[string]any{
			"value":       optDouble(c.Value),
			"currency":    optString(c.Currency),
			"order_id":    optString(c.OrderID),
			"item_number": optString(c.ItemNumber),
			"contents":    contentsNative(c.Contents),
		})
	}
	return map[string]any{
		"event_id":      ev.EventID,
		"event_name":    ev.EventName,
		"event_time":    ev.EventTime,
		"pixel_id":      ev.PixelID,
		"action_source": ev.ActionSource,
		"customer":      customer,
		"custom_data":   custom,
		"consent":       consentNative(ev.Consent),
		"crm_name":      optString(ev.CRMName),
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
	add(ev.OptOut, "OptOut")
	add(u.ClientIPAddress != "", "User.ClientIPAddress")
	add(u.ClientUserAgent != "", "User.ClientUserAgent")
	add(u.FBC != "", "User.FBC")
	add(u.FBP != "", "User.FBP")
	add(len(ev.Custom.ContentIDs) > 0, "Custom.ContentIDs")
	add(ev.Custom.ContentType != "", "Custom.ContentType")
	return lost
}
