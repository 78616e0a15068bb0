package sink

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var validNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func validWebEvent() Event {
	return Event{
		EventName:      "Purchase",
		EventTime:      validNow.Unix() - 60,
		EventID:        "order-1",
		ActionSource:   "website",
		EventSourceURL: "https://shop.example.com/thanks",
		User: UserData{
			Em:              []string{digestEmail},
			ClientUserAgent: "Mozilla/5.0",
			ClientIPAddress: "203.0.113.7",
		},
		Custom: &CustomData{Value: f64(10), Currency: "USD"},
	}
}

func TestValidate(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	tests := []struct {
		name   string
		mutate func(*Event)
		opts   ValidateOptions
		reason string // "" means valid
		field  string
	}{
		{"valid web purchase", func(*Event) {}, ValidateOptions{}, "", ""},
		{"missing event_name", func(e *Event) { e.EventName = "" }, ValidateOptions{}, ReasonMissingEventName, "event_name"},
		{"missing event_time", func(e *Event) { e.EventTime = 0 }, ValidateOptions{}, ReasonMissingEventTime, "event_time"},
		{"too old", func(e *Event) { e.EventTime = validNow.Add(-7*24*time.Hour - time.Second).Unix() }, ValidateOptions{}, ReasonEventTimeTooOld, "event_time"},
		{"exactly 7 days", func(e *Event) { e.EventTime = validNow.Add(-7 * 24 * time.Hour).Unix() }, ValidateOptions{}, "", ""},
		{"custom max age", func(e *Event) { e.EventTime = validNow.Add(-2 * time.Hour).Unix() }, ValidateOptions{MaxAge: time.Hour}, ReasonEventTimeTooOld, "event_time"},
		{"future within skew", func(e *Event) { e.EventTime = validNow.Add(time.Minute).Unix() }, ValidateOptions{}, "", ""},
		{"future beyond skew", func(e *Event) { e.EventTime = validNow.Add(61 * time.Second).Unix() }, ValidateOptions{}, ReasonEventTimeInFuture, "event_time"},
		{"milliseconds", func(e *Event) { e.EventTime = validNow.UnixMilli() }, ValidateOptions{}, ReasonEventTimeInFuture, "event_time"},
		{"no skew", func(e *Event) { e.EventTime = validNow.Unix() + 1 }, ValidateOptions{MaxFutureSkew: -1}, ReasonEventTimeInFuture, "event_time"},
		{"future clamped when asked", func(e *Event) { e.EventTime = validNow.Add(time.Hour).Unix() }, ValidateOptions{ClampFuture: true}, "", ""},
		{"store event 30 days old, no allowance", func(e *Event) {
			e.ActionSource, e.EventTime = "physical_store", validNow.Add(-30*24*time.Hour).Unix()
		}, ValidateOptions{}, ReasonEventTimeTooOld, "event_time"},
		{"store event 30 days old, allowance", func(e *Event) {
			e.ActionSource, e.EventTime = "physical_store", validNow.Add(-30*24*time.Hour).Unix()
		}, ValidateOptions{PhysicalStoreMaxAge: MaxPhysicalStoreAge}, "", ""},
		{"store allowance capped at 62 days", func(e *Event) {
			e.ActionSource, e.EventTime = "physical_store", validNow.Add(-63*24*time.Hour).Unix()
		}, ValidateOptions{PhysicalStoreMaxAge: 90 * 24 * time.Hour}, ReasonEventTimeTooOld, "event_time"},
		{"allowance is for store events only", func(e *Event) { e.EventTime = validNow.Add(-30 * 24 * time.Hour).Unix() },
			ValidateOptions{PhysicalStoreMaxAge: MaxPhysicalStoreAge}, ReasonEventTimeTooOld, "event_time"},
		{"missing action_source", func(e *Event) { e.ActionSource = "" }, ValidateOptions{}, ReasonMissingActionSource, "action_source"},
		{"unknown action_source", func(e *Event) { e.ActionSource = "offline" }, ValidateOptions{}, ReasonUnknownActionSource, "action_source"},
		{"physical_store ok without url", func(e *Event) { e.ActionSource = "physical_store"; e.EventSourceURL = ""; e.User.ClientUserAgent = "" }, ValidateOptions{}, "", ""},
		{"website without url", func(e *Event) { e.EventSourceURL = "" }, ValidateOptions{}, ReasonWebsiteMissingURL, "event_source_url"},
		{"website without ua", func(e *Event) { e.User.ClientUserAgent = "" }, ValidateOptions{}, ReasonWebsiteMissingUserAgent, "user_data.client_user_agent"},
		{"app without app_data", func(e *Event) { e.ActionSource = "app" }, ValidateOptions{}, ReasonAppMissingAppData, "app_data"},
		{"no customer info", func(e *Event) { e.ActionSource = "email"; e.User = UserData{} }, ValidateOptions{}, ReasonNoCustomerInformation, "user_data"},
		{"only ua (subset of location set)", func(e *Event) { e.User = UserData{ClientUserAgent: "UA"} }, ValidateOptions{}, ReasonInsufficientCustomer, "user_data"},
		{"location set", func(e *Event) {
			e.User = UserData{Ct: []string{digestNewYork}, Country: []string{digestUS}, St: []string{digestCA},
				Zp: []string{digestZip}, Ge: []string{digestF}, ClientUserAgent: "UA"}
		}, ValidateOptions{}, ReasonInsufficientCustomer, "user_data"},
		{"db+ua", func(e *Event) { e.User = UserData{Db: []string{digestDOB}, ClientUserAgent: "UA"} }, ValidateOptions{}, ReasonInsufficientCustomer, "user_data"},
		{"fn+ge", func(e *Event) {
			e.ActionSource = "chat"
			e.User = UserData{Fn: []string{digestMary}, Ge: []string{digestF}}
		}, ValidateOptions{}, ReasonInsufficientCustomer, "user_data"},
		{"ln+ge", func(e *Event) {
			e.ActionSource = "chat"
			e.User = UserData{Ln: []string{digestSmith}, Ge: []string{digestF}}
		}, ValidateOptions{}, ReasonInsufficientCustomer, "user_data"},
		{"fn+ln+ge is enough", func(e *Event) {
			e.ActionSource = "chat"
			e.User = UserData{Fn: []string{digestMary}, Ln: []string{digestSmith}, Ge: []string{digestF}}
		}, ValidateOptions{}, "", ""},
		{"ua+ip is enough", func(e *Event) { e.User = UserData{ClientUserAgent: "UA", ClientIPAddress: "203.0.113.7"} }, ValidateOptions{}, "", ""},
		{"unhashed email", func(e *Event) { e.User.Em = []string{"john_smith@gmail.com"} }, ValidateOptions{}, ReasonUnhashedUserData, "user_data.em"},
		{"uppercase hash", func(e *Event) { e.User.Ph = []string{strings.ToUpper(digestPhone)} }, ValidateOptions{}, ReasonUnhashedUserData, "user_data.ph"},
		{"unhashed country", func(e *Event) { e.User.Country = []string{"us"} }, ValidateOptions{}, ReasonUnhashedUserData, "user_data.country"},
		{"param builder hash ok", func(e *Event) { e.User.Em = []string{digestEmail + ".AQYCAQAA"} }, ValidateOptions{}, "", ""},
		{"external_id not checked", func(e *Event) { e.User.ExternalID = []string{"raw-id"} }, ValidateOptions{}, "", ""},
		{"bad lead_id", func(e *Event) { e.User.LeadID = json.Number("12") }, ValidateOptions{}, ReasonInvalidLeadID, "user_data.lead_id"},
		{"lead_id alone ok", func(e *Event) {
			e.ActionSource = "system_generated"
			e.EventName = "Qualified"
			e.User = UserData{LeadID: json.Number("1234567890123456")}
		}, ValidateOptions{}, "", ""},
		{"purchase without custom", func(e *Event) { e.Custom = nil }, ValidateOptions{}, ReasonPurchaseMissingValue, "custom_data"},
		{"purchase without value", func(e *Event) { e.Custom.Value = nil }, ValidateOptions{}, ReasonPurchaseMissingValue, "custom_data"},
		{"purchase without currency", func(e *Event) { e.Custom.Currency = "" }, ValidateOptions{}, ReasonPurchaseMissingValue, "custom_data"},
		{"lead without value ok", func(e *Event) { e.EventName = "Lead"; e.Custom = nil }, ValidateOptions{}, "", ""},
		{"lowercase currency", func(e *Event) { e.Custom.Currency = "usd" }, ValidateOptions{}, ReasonInvalidCurrency, "custom_data.currency"},
		{"content without id", func(e *Event) { e.Custom.Contents = []Content{{Quantity: 1}} }, ValidateOptions{}, ReasonContentMissingID, "custom_data.contents"},
		{"dpo other value", func(e *Event) { e.DataProcessingOptions = []string{"GDPR"} }, ValidateOptions{}, ReasonInvalidDPO, "data_processing_options"},
		{"ldu without country", func(e *Event) { e.DataProcessingOptions = []string{"LDU"} }, ValidateOptions{}, ReasonInvalidDPO, "data_processing_options_country"},
		{"ldu geolocate", func(e *Event) {
			e.DataProcessingOptions = []string{"LDU"}
			e.DataProcessingOptionsCountry, e.DataProcessingOptionsState = i32(0), i32(0)
		}, ValidateOptions{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := validWebEvent()
			tt.mutate(&ev)
			err := Validate(&ev, validNow, tt.opts)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate = %v, want *InvalidError %s", err, tt.reason)
			}
			if ie.Reason != tt.reason || ie.Field != tt.field {
				t.Fatalf("got %s/%s, want %s/%s (%v)", ie.Reason, ie.Field, tt.reason, tt.field, err)
			}
		})
	}
}

func TestValidateRequest(t *testing.T) {
	good := validWebEvent()
	bad := validWebEvent()
	bad.ActionSource = ""
	many := make([]*Event, MaxEventsPerRequest+1)
	for i := range many {
		many[i] = &good
	}
	tests := []struct {
		name   string
		req    Request
		reason string
		index  int
	}{
		{"ok", Request{Data: []*Event{&good, &good}, PartnerAgent: "capirelay"}, "", -1},
		{"empty", Request{}, ReasonEmptyData, -1},
		{"too many", Request{Data: many}, ReasonTooManyEvents, -1},
		{"exactly 1000", Request{Data: many[:MaxEventsPerRequest]}, "", -1},
		{"partner agent too long", Request{Data: []*Event{&good}, PartnerAgent: strings.Repeat("a", 23)}, ReasonInvalidPartnerAgent, -1},
		{"partner agent one letter", Request{Data: []*Event{&good}, PartnerAgent: "a-1.0.0"}, ReasonInvalidPartnerAgent, -1},
		{"gtm style agent", Request{Data: []*Event{&good}, PartnerAgent: "gtmss-1.0.0-0.0.9"}, "", -1},
		{"bad event index", Request{Data: []*Event{&good, &good, &bad}}, ReasonMissingActionSource, 2},
		{"null event", Request{Data: []*Event{&good, nil}}, ReasonEmptyData, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRequest(&tt.req, validNow, ValidateOptions{})
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ValidateRequest = %v", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason != tt.reason {
				t.Fatalf("ValidateRequest = %v, want %s", err, tt.reason)
			}
			var ee *EventError
			if tt.index >= 0 && (!errors.As(err, &ee) || ee.Index != tt.index) {
				t.Fatalf("ValidateRequest = %v, want event index %d", err, tt.index)
			}
		})
	}
}

// The raw values a publisher sent must never reach an error string, which ends up in logs.
func TestErrorsNeverContainPII(t *testing.T) {
	const email, phone = "john_smith@gmail.com", "16505551212"
	ev := validWebEvent()
	ev.User.Em = []string{email}
	ev.User.Ph = []string{phone}
	err := Validate(&ev, validNow, ValidateOptions{})
	if err == nil {
		t.Fatal("unhashed email accepted")
	}
	ev.User.Em = []string{digestEmail}
	err2 := Validate(&ev, validNow, ValidateOptions{})
	if err2 == nil {
		t.Fatal("unhashed phone accepted")
	}
	_, nerr := NormalizeEmail("john_smith@@gmail.com")
	_, perr := NormalizePhone("165055")
	for _, e := range []error{err, err2, nerr, perr} {
		if e == nil {
			t.Fatal("expected an error")
		}
		s := e.Error()
		for _, v := range []string{email, phone, "john_smith", "165055"} {
			if strings.Contains(s, v) {
				t.Fatalf("error %q contains PII %q", s, v)
			}
		}
	}
}

func TestValidateClampSetsNow(t *testing.T) {
	ev := validWebEvent()
	ev.EventTime = validNow.Add(3 * time.Hour).Unix()
	if err := Validate(&ev, validNow, ValidateOptions{ClampFuture: true}); err != nil {
		t.Fatal(err)
	}
	if ev.EventTime != validNow.Unix() {
		t.Fatalf("event_time %d, want clamped to %d", ev.EventTime, validNow.Unix())
	}
}
