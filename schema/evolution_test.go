package schema

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// avro/v1 holds the schemas as first published, frozen: records written with them are in
// topics today and must keep decoding, whatever the embedded schemas become.

func readV1(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("avro", "v1", name+".avsc"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// v1Web and v1Offline use only what the v1 schemas can carry.
func v1Web() Event {
	return Event{
		Kind: KindWeb, EventID: "evt-v1", EventName: "Purchase", EventTime: 1_760_000_000,
		PixelID: "123456789012345", ActionSource: "website",
		EventSourceURL: "https://shop.example.com/checkout/done", ReferrerURL: "https://shop.example.com/cart",
		OptOut: true,
		User: UserData{
			Emails: []string{piiEmail}, Phones: []string{"+33 6 12 34 56 78"}, ExternalIDs: []string{"cust-42"},
			ClientIPAddress: "203.0.113.7", ClientUserAgent: "Mozilla/5.0", FBC: "fb.1.1.x", FBP: "fb.1.2.3",
		},
		Custom: CustomData{
			Value: ptr(142.5), Currency: "EUR", OrderID: "order-9", ContentIDs: []string{"sku-1"},
			ContentType: "product", Contents: []Content{{ID: "sku-1", Quantity: 2, ItemPrice: ptr(50)}},
		},
		Consent: Consent{Known: true, AdsAllowed: true, LimitedDataUse: true, LDUCountry: 1, LDUState: 1000},
	}
}

func v1Offline() Event {
	return Event{
		Kind: KindOffline, EventID: "crm-v1", EventName: "Approval", EventTime: 1_760_000_100,
		PixelID: "123456789012345", ActionSource: "system_generated",
		User: UserData{
			Emails: []string{piiEmail}, Phones: []string{"+14155550100"}, FirstNames: []string{"Alice"},
			LastNames: []string{"Martin"}, DatesOfBirth: []string{"19900101"}, Genders: []string{"f"},
			Cities: []string{"Lyon"}, States: []string{"ara"}, Zips: []string{"69001"}, Countries: []string{"fr"},
			ExternalIDs: []string{"sf-003"}, LeadID: "1234567890123456",
		},
		Custom: CustomData{
			Value: ptr(0), Currency: "EUR", OrderID: "app-5", ItemNumber: "card-gold",
			Contents: []Content{{ID: "card-gold", Quantity: 1}},
		},
		Consent: Consent{Known: true, AdsAllowed: true},
		CRMName: "Salesforce",
	}
}

// v1Native writes the v1 records field by field from the v1 schema text, so the bytes do not
// depend on today's encoder.
func v1WebNative(ev Event) map[string]any {
	u, c := ev.User, ev.Custom
	return map[string]any{
		"event_id": ev.EventID, "event_name": ev.EventName, "event_time": ev.EventTime, "pixel_id": ev.PixelID,
		"event_source_url": ev.EventSourceURL, "referrer_url": optString(ev.ReferrerURL),
		"action_source": optString(ev.ActionSource), "client_ip_address": u.ClientIPAddress,
		"client_user_agent": u.ClientUserAgent, "fbp": u.FBP, "fbc": u.FBC,
		"external_id": optString(u.ExternalIDs[0]), "email": optString(u.Emails[0]), "phone": optString(u.Phones[0]),
		"opt_out": ev.OptOut, "consent": consentNative(ev.Consent),
		"custom_data": map[string]any{namespace + ".WebCustomData": map[string]any{
			"value": optDouble(c.Value), "currency": optString(c.Currency), "order_id": optString(c.OrderID),
			"content_ids": strings2any(c.ContentIDs), "content_type": optString(c.ContentType),
			"contents": []any{map[string]any{"id": c.Contents[0].ID, "quantity": c.Contents[0].Quantity,
				"item_price": optDouble(c.Contents[0].ItemPrice)}},
		}},
	}
}

func v1OfflineNative(ev Event) map[string]any {
	u, c := ev.User, ev.Custom
	return map[string]any{
		"event_id": ev.EventID, "event_name": ev.EventName, "event_time": ev.EventTime, "pixel_id": ev.PixelID,
		"action_source": ev.ActionSource,
		"customer": map[string]any{namespace + ".Customer": map[string]any{
			"emails": strings2any(u.Emails), "phones": strings2any(u.Phones),
			"first_name": optString(u.FirstNames[0]), "last_name": optString(u.LastNames[0]),
			"date_of_birth": optString(u.DatesOfBirth[0]), "gender": optString(u.Genders[0]),
			"city": optString(u.Cities[0]), "state": optString(u.States[0]), "zip": optString(u.Zips[0]),
			"country": optString(u.Countries[0]), "external_id": optString(u.ExternalIDs[0]),
			"lead_id": optString(u.LeadID),
		}},
		"custom_data": map[string]any{namespace + ".OfflineCustomData": map[string]any{
			"value": optDouble(c.Value), "currency": optString(c.Currency), "order_id": optString(c.OrderID),
			"item_number": optString(c.ItemNumber),
			"contents":    []any{map[string]any{"id": c.Contents[0].ID, "quantity": c.Contents[0].Quantity, "item_price": nil}},
		}},
		"consent":  consentNative(ev.Consent),
		"crm_name": optString(ev.CRMName),
	}
}

// Records written with the v1 schemas decode with today's decoder, raw (the topic configured
// with the v1 text as its writer schema) and in wire format (the registry holding v1).
func TestV1RecordsStillDecode(t *testing.T) {
	webV1, offV1 := readV1(t, SchemaWebEvent), readV1(t, SchemaOfflineEvent)
	reg := newRegistry(t)
	reg.seed("capi.web-value", 21, webV1)
	reg.seed("capi.offline-value", 22, offV1)
	dec := mustDecoder(t, map[string]TopicConfig{
		"raw.web":     {Mode: ModeRaw, Schema: webV1},
		"raw.offline": {Mode: ModeRaw, Schema: offV1},
		"wire":        {Mode: ModeWire},
		// Configured with today's embedded schema by name, fed v1 bodies: the producer has
		// not upgraded yet.
		"named.web":     {Mode: ModeRaw, Schema: SchemaWebEvent},
		"named.offline": {Mode: ModeRaw, Schema: SchemaOfflineEvent},
	}, WithRegistry(reg.client))

	webBody := encodeWith(t, webV1, v1WebNative(v1Web()))
	offBody := encodeWith(t, offV1, v1OfflineNative(v1Offline()))
	for _, tc := range []struct {
		name, topic string
		value       []byte
		want        Event
	}{
		{"web raw", "raw.web", webBody, v1Web()},
		{"offline raw", "raw.offline", offBody, v1Offline()},
		{"web wire", "wire", append(AppendWireHeader(nil, 21), webBody...), v1Web()},
		{"offline wire", "wire", append(AppendWireHeader(nil, 22), offBody...), v1Offline()},
		{"web raw, topic on the current embedded schema", "named.web", webBody, v1Web()},
		{"offline raw, topic on the current embedded schema", "named.offline", offBody, v1Offline()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dec.Decode(context.Background(), tc.topic, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mismatch\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestSchemasEvolveCompatibly checks the embedded schemas against v1 the way a registry's
// BACKWARD/FORWARD check would for additions: every v1 field is still there with the same
// type, and every field added since has a default, recursively through nested records.
func TestSchemasEvolveCompatibly(t *testing.T) {
	for _, name := range []string{SchemaWebEvent, SchemaOfflineEvent} {
		t.Run(name, func(t *testing.T) {
			var old, cur any
			if err := json.Unmarshal([]byte(readV1(t, name)), &old); err != nil {
				t.Fatal(err)
			}
			text, _ := EmbeddedSchema(name)
			if err := json.Unmarshal([]byte(text), &cur); err != nil {
				t.Fatal(err)
			}
			for _, p := range compatProblems(old, cur, name) {
				t.Error(p)
			}
		})
	}
}

// compatProblems compares two schema JSON values; docs are ignored.
func compatProblems(old, cur any, path string) []string {
	switch o := old.(type) {
	case map[string]any:
		c, ok := cur.(map[string]any)
		if !ok {
			return []string{path + ": type changed"}
		}
		if o["type"] != "record" {
			if o["type"] == "array" && c["type"] == "array" {
				return compatProblems(o["items"], c["items"], path+"[]")
			}
			if fmt.Sprint(strip(o)) != fmt.Sprint(strip(c)) {
				return []string{path + ": type changed"}
			}
			return nil
		}
		if o["name"] != c["name"] {
			return []string{path + ": record renamed"}
		}
		var probs []string
		curFields := map[string]map[string]any{}
		for _, f := range c["fields"].([]any) {
			fm := f.(map[string]any)
			curFields[fm["name"].(string)] = fm
		}
		oldNames := map[string]bool{}
		for _, f := range o["fields"].([]any) {
			fm := f.(map[string]any)
			n := fm["name"].(string)
			oldNames[n] = true
			cf, ok := curFields[n]
			if !ok {
				probs = append(probs, path+"."+n+": removed")
				continue
			}
			if fmt.Sprint(fm["default"]) != fmt.Sprint(cf["default"]) {
				probs = append(probs, path+"."+n+": default changed")
			}
			probs = append(probs, compatProblems(fm["type"], cf["type"], path+"."+n)...)
		}
		for n, cf := range curFields {
			if _, has := cf["default"]; !oldNames[n] && !has {
				probs = append(probs, path+"."+n+": added without a default")
			}
		}
		return probs
	case []any: // union: same branches in the same order (the default is the first's)
		c, ok := cur.([]any)
		if !ok || len(c) != len(o) {
			return []string{path + ": union changed"}
		}
		var probs []string
		for i := range o {
			probs = append(probs, compatProblems(o[i], c[i], path)...)
		}
		return probs
	default:
		if fmt.Sprint(old) != fmt.Sprint(cur) {
			return []string{path + ": type changed"}
		}
		return nil
	}
}

func strip(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "doc" {
			out[k] = v
		}
	}
	return out
}
